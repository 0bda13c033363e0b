package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestVolumesInMachine: the installed ctrd keeps volumes under
// /var/lib/ctr/volumes; a named volume gets the image's content, keeps
// what a container wrote through a SIGKILL of ctrd, refuses removal while
// a container uses it; docker cp goes through it; prune and rm -v clean
// up.
func TestVolumesInMachine(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	withBusybox(t, m)
	const name = "e2e-vol"
	removeOnCleanup(t, m, name)
	t.Cleanup(func() { _, _ = try(m, "ctrctl", "volume", "rm", "-f", "e2edata") })

	run(t, m, "ctrctl", "run", "--name", name, "-v", "e2edata:/etc", "busybox", "sh", "-c", "echo kept > /etc/e2e-file")
	if out := run(t, m, "ctrctl", "volume", "inspect", "-f", "{{.Mountpoint}}", "e2edata"); trim(out) != "/var/lib/ctr/volumes/e2edata/_data" {
		t.Errorf("mount point %q", out)
	}
	if out := run(t, m, "cat", "/var/lib/ctr/volumes/e2edata/_data/passwd"); !strings.Contains(out, "root:") {
		t.Errorf("the image's /etc was not copied into the new volume: %q", out)
	}
	run(t, m, "systemctl", "kill", "--signal=KILL", "ctr.service")
	waitFor(t, time.Minute, "ctr.service to stop", func() (bool, string) {
		s := activeState(t, m, "ctr.service")
		return s != "active" && s != "deactivating", s
	})
	if out := run(t, m, "ctrctl", "run", "--rm", "-v", "e2edata:/x", "busybox", "cat", "/x/e2e-file"); out != "kept\n" {
		t.Errorf("the volume after a SIGKILL of ctrd: %q", out)
	}
	if out, err := try(m, "ctrctl", "volume", "rm", "e2edata"); err == nil || !strings.Contains(out+err.Error(), "volume is in use") {
		t.Errorf("volume rm of a volume in use: %v %q", err, out)
	}
	run(t, m, "ctrctl", "cp", name+":/etc/e2e-file", "/tmp/e2e-file-out")
	if out := run(t, m, "cat", "/tmp/e2e-file-out"); out != "kept\n" {
		t.Errorf("ctrctl cp out of the volume: %q", out)
	}
	run(t, m, "ctrctl", "rm", "-v", name)
	run(t, m, "ctrctl", "volume", "rm", "e2edata")
	if out, _ := try(m, "ls", "/var/lib/ctr/volumes"); strings.Contains(out, "e2edata") {
		t.Errorf("the volume's folder is left: %q", out)
	}
}
