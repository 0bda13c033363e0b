package layerfs

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"example.org/ctr/internal/testenv"
)

// TestOnOwnThreadLeavesTheProcessAlone: a thread that moves into its own
// mount namespace is thrown away, and every thread left, the main one
// included, is still in the process's namespace, however often it runs.
func TestOnOwnThreadLeavesTheProcessAlone(t *testing.T) {
	testenv.RequireRoot(t)
	want, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		var inside string
		OnOwnThread(func() {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				t.Error(err)
				return
			}
			inside, _ = os.Readlink("/proc/thread-self/ns/mnt")
		})
		if inside == want || inside == "" {
			t.Fatalf("the function did not run in a namespace of its own: %q", inside)
		}
	}
	// A thrown-away thread ends a moment after the function returns.
	var stray []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		stray = strayThreads(t, want)
		if len(stray) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(stray) > 0 {
		t.Errorf("threads left in another mount namespace than %s: %v", want, stray)
	}
}

// strayThreads lists the process's threads whose mount namespace is not
// want.
func strayThreads(t *testing.T, want string) []string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, task := range tasks {
		ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/mnt")
		if err == nil && ns != want {
			out = append(out, task.Name()+" in "+ns)
		}
	}
	return out
}
