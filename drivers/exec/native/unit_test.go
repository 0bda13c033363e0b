package native

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

func TestMountOptions(t *testing.T) {
	flags, clear, prop, data := mountOptions([]string{"ro", "nosuid", "nodev", "rbind", "rslave", "size=64m", "mode=1777"})
	if flags != unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_BIND|unix.MS_REC {
		t.Errorf("flags %#x", flags)
	}
	if clear != 0 || prop != unix.MS_SLAVE|unix.MS_REC || data != "size=64m,mode=1777" {
		t.Errorf("clear %#x prop %#x data %q", clear, prop, data)
	}
	flags, clear, _, _ = mountOptions([]string{"ro", "rw", "exec"})
	if flags&unix.MS_RDONLY != 0 || clear != unix.MS_RDONLY|unix.MS_NOEXEC {
		t.Errorf("rw after ro: flags %#x clear %#x", flags, clear)
	}
}

func TestStartTime(t *testing.T) {
	a, err := startTime(os.Getpid())
	if err != nil || a == 0 {
		t.Fatalf("%d %v", a, err)
	}
	st := &state{ID: "x", Pid: os.Getpid(), StartTime: a}
	if !st.alive() {
		t.Error("this process is not alive")
	}
	st.StartTime++
	if st.alive() {
		t.Error("a different start time still counts as the same process")
	}
}

func TestMessages(t *testing.T) {
	err := errorMessage((&exec.CommandError{Command: "nosuch", NotFound: true}).Classify()).toError()
	var ce *exec.CommandError
	if !errors.As(err, &ce) || !ce.NotFound || errdefs.ClassOf(err) != errdefs.NotFoundClass {
		t.Errorf("command error round trip: %v", err)
	}
	err = errorMessage(errdefs.InvalidArgument("bad mount")).toError()
	if errdefs.ClassOf(err) != errdefs.InvalidArgumentClass || err.Error() != "bad mount" {
		t.Errorf("classed error round trip: %v (%v)", err, errdefs.ClassOf(err))
	}

	parent, child, err := socketpair()
	if err != nil {
		t.Fatal(err)
	}
	defer parent.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := send(int(child.Fd()), &message{Type: msgConsole}, int(w.Fd())); err != nil {
		t.Fatal(err)
	}
	w.Close()
	child.Close()
	var m message
	ok, fds, err := recv(int(parent.Fd()), &m)
	if err != nil || !ok || m.Type != msgConsole || len(fds) != 1 {
		t.Fatalf("recv: %v %v %+v %v", ok, err, m, fds)
	}
	unix.Close(fds[0])
	if ok, _, err := recv(int(parent.Fd()), &m); ok || err != nil {
		t.Errorf("end of file: %v %v", ok, err)
	}
}

func TestCheckID(t *testing.T) {
	long := strings.Repeat("a", 128)
	for _, bad := range []string{"", "../x", "a/b", "-x", "_x", ".x", "a b", "a\x00", "é", long + "a", string(make([]byte, 200))} {
		if errdefs.ClassOf(checkID(bad)) != errdefs.InvalidArgumentClass {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"3f2a_b.c-d", "a", "Z9", long, "x..", "a-_"} {
		if err := checkID(good); err != nil {
			t.Error(err)
		}
	}
}
