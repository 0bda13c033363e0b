package cli

import (
	"errors"
	"testing"
)

func TestStartErrorDecidesByTheMessageAsDocker(t *testing.T) {
	for msg, want := range map[string]int{
		`exec: "nope": executable file not found in $PATH`:          ExitNotFound,
		"open /nonexistent: no such file or directory":              ExitNotFound,
		"exec /etc/passwd: permission denied":                       ExitCannotInvoke,
		"exec /etc: is a directory":                                 ExitCannotInvoke,
		"network ctrtnosuch not found":                              0, // 125, the daemon's refusal
		"No such container: x":                                      0,
		"cannot start a container that is paused: unpause it first": 0,
	} {
		err := startError(errors.New(msg))
		var se *StatusError
		got := 0
		if errors.As(err, &se) {
			got = se.Code
		}
		if got != want {
			t.Errorf("startError(%q): code %d, want %d", msg, got, want)
		}
	}
}
