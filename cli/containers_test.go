package cli

import (
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestParseRestartPolicy(t *testing.T) {
	for in, want := range map[string]container.RestartPolicy{
		"":               {Name: "no"},
		"no":             {Name: "no"},
		"always":         {Name: "always"},
		"unless-stopped": {Name: "unless-stopped"},
		"on-failure":     {Name: "on-failure"},
		"on-failure:3":   {Name: "on-failure", MaximumRetryCount: 3},
		"sometimes":      {Name: "sometimes"}, // the daemon refuses it, with Docker's message
	} {
		got, err := ParseRestartPolicy(in)
		if err != nil || got != want {
			t.Errorf("ParseRestartPolicy(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := ParseRestartPolicy("on-failure:x"); err == nil {
		t.Error("a retry count that is not a number was accepted")
	}
}
