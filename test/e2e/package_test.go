package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"example.org/ctr/internal/testenv"
)

// TestDebAndRPMAgree checks the rpm (CTR_E2E_RPM, or one built with make
// rpm) against the deb (CTR_E2E_DEB, or one built with make deb): both come
// from packaging/ctr.pkg, so they hold the same files with the same modes,
// and both carry install and removal scripts.
func TestDebAndRPMAgree(t *testing.T) {
	testenv.RequireE2E(t)
	testenv.RequireCommand(t, "rpmbuild", "rpm", "dpkg-deb", "make")
	deb := os.Getenv("CTR_E2E_DEB")
	if deb == "" {
		var err error
		if deb, err = buildDeb(t); err != nil {
			t.Fatal(err)
		}
	}
	rpm := os.Getenv("CTR_E2E_RPM")
	if rpm == "" {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dist := t.TempDir()
		cmd := exec.Command("make", "--no-print-directory", "rpm", "DIST="+dist)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make rpm: %v\n%s", err, out)
		}
		rpms, _ := filepath.Glob(filepath.Join(dist, "*.rpm"))
		if len(rpms) != 1 {
			t.Fatalf("make rpm made %d packages", len(rpms))
		}
		rpm = rpms[0]
	}

	// dpkg-deb -c: "-rwxr-xr-x root/root 123 2026-01-01 00:00 ./usr/bin/ctrd"
	debFiles := map[string]string{}
	for _, line := range strings.Split(output(t, "dpkg-deb", "-c", deb), "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && !strings.HasPrefix(f[0], "d") {
			debFiles[strings.TrimPrefix(f[5], ".")] = f[0] + " " + f[1]
		}
	}
	// rpm --dump: "path size mtime digest mode owner group ..."
	rpmFiles := map[string]string{}
	for _, line := range strings.Split(output(t, "rpm", "-qp", "--dump", rpm), "\n") {
		f := strings.Fields(line)
		if len(f) >= 7 {
			rpmFiles[f[0]] = modeString(t, f[4]) + " " + f[5] + "/" + f[6]
		}
	}
	if len(debFiles) == 0 || len(debFiles) != len(rpmFiles) {
		t.Errorf("deb holds %d files, rpm %d:\ndeb %v\nrpm %v", len(debFiles), len(rpmFiles), keys(debFiles), keys(rpmFiles))
	}
	for p, d := range debFiles {
		if r := rpmFiles[p]; r != d {
			t.Errorf("%s: deb %q, rpm %q", p, d, r)
		}
	}

	scripts := output(t, "rpm", "-qp", "--scripts", rpm)
	for _, s := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "ctr_configure", "ctr_stop", "ctr_disable"} {
		if !strings.Contains(scripts, s) {
			t.Errorf("the rpm's scripts lack %q", s)
		}
	}
	control := output(t, "dpkg-deb", "-I", deb)
	for _, s := range []string{"postinst", "prerm", "postrm", "Package: ctr", "Architecture: amd64"} {
		if !strings.Contains(control, s) {
			t.Errorf("the deb's control part lacks %q", s)
		}
	}
}

// output runs a host command and returns its standard output.
func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

// modeString turns rpm's octal mode (0100755) into ls's form (-rwxr-xr-x).
func modeString(t *testing.T, octal string) string {
	var m uint32
	for _, c := range octal {
		if c < '0' || c > '7' {
			t.Fatalf("bad mode %q", octal)
		}
		m = m*8 + uint32(c-'0')
	}
	s := []byte("-rwxrwxrwx")
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) == 0 {
			s[i+1] = '-'
		}
	}
	return string(s)
}

// keys returns the sorted keys of m.
func keys(m map[string]string) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	sort.Strings(k)
	return k
}

// TestPackageUpgradeAndRemove runs the deb's maintainer scripts through an
// upgrade (reinstalling restarts a running ctrd), a removal (socket and
// service stopped, enablement gone, files gone), a fresh install again, and
// an upgrade after an admin disabled the socket (it stays disabled). It
// leaves the machine as installedMachine made it.
func TestPackageUpgradeAndRemove(t *testing.T) {
	m := installedMachine(t)
	dumpOnFailure(t, m)
	serviceActive(t, m)
	before := show(t, m, "ctr.service", "MainPID")["MainPID"]
	const deb = "/var/tmp/ctr-e2e/ctr.deb"

	run(t, m, "dpkg", "-i", deb)
	waitActive(t, m)
	if after := show(t, m, "ctr.service", "MainPID")["MainPID"]; after == before {
		t.Errorf("an upgrade left ctrd %s running: postinst did not restart it", before)
	}

	run(t, m, "dpkg", "-r", "ctr")
	for _, u := range []string{"ctr.socket", "ctr.service"} {
		if s := activeState(t, m, u); s != "inactive" {
			t.Errorf("%s is %s after dpkg -r", u, s)
		}
	}
	if _, err := try(m, "test", "-e", "/usr/bin/ctrd"); err == nil {
		t.Error("/usr/bin/ctrd is still there after dpkg -r")
	}
	if _, err := try(m, "test", "-L", "/etc/systemd/system/sockets.target.wants/ctr.socket"); err == nil {
		t.Error("ctr.socket is still enabled after dpkg -r")
	}

	run(t, m, "dpkg", "-i", deb)
	if got := trim(run(t, m, "systemctl", "is-enabled", "ctr.socket")); got != "enabled" {
		t.Errorf("ctr.socket is %s after installing again", got)
	}
	serviceActive(t, m)

	// An upgrade keeps an admin's choice to disable the socket.
	run(t, m, "systemctl", "disable", "ctr.socket")
	run(t, m, "dpkg", "-i", deb)
	if got, _ := try(m, "systemctl", "is-enabled", "ctr.socket"); trim(got) != "disabled" {
		t.Errorf("ctr.socket is %s after an upgrade, want it left disabled", trim(got))
	}
	run(t, m, "systemctl", "enable", "ctr.socket")
	serviceActive(t, m)
}
