package layerfs

import (
	"os"
	"testing"

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
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/mnt")
		if err == nil && ns != want {
			t.Errorf("thread %s is left in %s, want %s", task.Name(), ns, want)
		}
	}
}
