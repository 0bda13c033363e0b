package native

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/drivers/exec/seccomp"
	"example.org/ctr/internal/errdefs"
)

// The parent and the re-executed child talk over a SOCK_SEQPACKET
// socketpair: the child's end is its fd 3, close-on-exec in the child, so
// that a successful execve of the user's command closes it.
//
//	parent → child: one config message; then, once the child is in its
//	                cgroup, a placed message (the child sets up meanwhile,
//	                and waits for it before the cgroup namespace, limits,
//	                identity and execve)
//	child → parent: optionally a console message (the pty master rides
//	                along as SCM_RIGHTS), then either an error message, or
//	                a ready message right before execve (and an error
//	                message should execve fail); then end of file.
const (
	// initArg0 is argv[0] of the re-executed ctrd.
	initArg0 = "ctr-native-init"
	// initEnv is set in the re-executed ctrd's environment: "init" for a
	// container's first process, "exec" for a process joining one,
	// modeEarly for a first process started ahead of its container.
	initEnv = "_CTR_NATIVE_INIT"
	// modeEarly is initEnv's value in an Early.
	modeEarly = "early"
	// syncFD is the child's end of the socketpair.
	syncFD = 3
	// mntFD is, in exec mode, the container's mount namespace.
	mntFD = 4
	// maxMessage bounds one message.
	maxMessage = 4 << 20
)

// config is what the child needs to set up and run the command.
type config struct {
	// Spec is the container (init mode).
	Spec *exec.Spec `json:",omitempty"`
	// Process is the process to run (both modes; for init, Spec.Process).
	Process *exec.ProcessSpec
	// HostnameFile, if set, is bound onto /etc/hostname.
	HostnameFile string `json:",omitempty"`
	// UserNS is set when the container has its own user namespace.
	UserNS bool `json:",omitempty"`
	// CgroupNS asks the child to unshare a cgroup namespace once it is in
	// its cgroup.
	CgroupNS bool `json:",omitempty"`
	// CgroupFS are the hierarchies the child mounts at /sys/fs/cgroup
	// (init mode), once in its cgroup namespace.
	CgroupFS []cgroupMount `json:",omitempty"`
	// ParentCgroup is the parent's /proc/self/cgroup: the child mounts
	// only the hierarchies it was moved out of it in.
	ParentCgroup string `json:",omitempty"`
	// NewNetNS is set when the child was cloned into a network namespace
	// of its own: it brings that namespace's loopback interface up.
	NewNetNS bool `json:",omitempty"`
	// Seccomp is Process.SeccompProgram, or Process.Seccomp compiled,
	// loaded by the child just before its execve; empty is no filter.
	Seccomp seccomp.Program `json:",omitempty"`
	// Early is set for an Early (init mode): the namespaces it makes
	// and the descriptors that come with the config.
	Early *earlyConfig `json:",omitempty"`
}

// compileSeccomp puts the process's filter, compiled, into cfg: the
// program the caller compiled, or its profile compiled here.
func (cfg *config) compileSeccomp() error {
	prog := cfg.Process.SeccompProgram
	if len(prog) == 0 {
		if cfg.Process.Seccomp == nil {
			return nil
		}
		var err error
		if prog, err = seccomp.Compile(cfg.Process.Seccomp); err != nil {
			return err
		}
	}
	cfg.Seccomp = prog
	// The child loads the program: the profile need not go to it as well
	// (docker's is some 8 KB of JSON, and it went twice, in Spec and in
	// Process). Copies, so that the caller's spec keeps its profile.
	p := *cfg.Process
	p.Seccomp, p.SeccompProgram = nil, nil
	cfg.Process = &p
	if cfg.Spec != nil {
		s := *cfg.Spec
		s.Process = p
		cfg.Spec = &s
	}
	return nil
}

type messageType string

const (
	msgConsole messageType = "console"
	msgReady   messageType = "ready"
	msgError   messageType = "error"
	// msgPlaced goes the other way: the parent has put the child in its
	// cgroup.
	msgPlaced messageType = "placed"
)

// message is what the child sends back.
type message struct {
	Type messageType
	// Error fields.
	Class    string `json:",omitempty"`
	Message  string `json:",omitempty"`
	Command  string `json:",omitempty"`
	NotFound bool   `json:",omitempty"`
	Exec     bool   `json:",omitempty"` // the command could not be executed
}

// toError turns an error message into an error with its class.
func (m *message) toError() error {
	if m.Exec {
		var inner error
		if m.Message != "" {
			inner = errors.New(m.Message)
		}
		return (&exec.CommandError{Command: m.Command, NotFound: m.NotFound, Err: inner}).Classify()
	}
	return errdefs.Errorf(errdefs.ParseClass(m.Class), "%s", m.Message)
}

// errorMessage turns a set-up error into a message.
func errorMessage(err error) *message {
	var ce *exec.CommandError
	if errors.As(err, &ce) {
		m := &message{Type: msgError, Exec: true, Command: ce.Command, NotFound: ce.NotFound}
		if ce.Err != nil {
			m.Message = ce.Err.Error()
		}
		return m
	}
	return &message{Type: msgError, Class: errdefs.ClassOf(err).String(), Message: err.Error()}
}

// send writes one message, with fds as SCM_RIGHTS if any.
func send(fd int, v any, fds ...int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return unix.Sendmsg(fd, b, oob, nil, 0)
}

// recv reads one message into v; ok is false at end of file. It returns
// the fds that came with the message.
func recv(fd int, v any) (ok bool, fds []int, err error) {
	// Peek at the size first: a buffer of the message's own size.
	var one [1]byte
	var n int
	for {
		n, _, _, _, err = unix.Recvmsg(fd, one[:], nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return false, nil, err
	}
	if n > maxMessage {
		return false, nil, fmt.Errorf("message of %d bytes from container init is too large", n)
	}
	buf := make([]byte, max(n, 1))
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, nil, err
		}
		if oobn > 0 {
			scms, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil {
				return false, nil, err
			}
			for _, scm := range scms {
				got, err := unix.ParseUnixRights(&scm)
				if err == nil {
					fds = append(fds, got...)
				}
			}
		}
		if n == 0 && oobn == 0 {
			return false, nil, nil
		}
		if err := json.Unmarshal(buf[:n], v); err != nil {
			for _, f := range fds {
				unix.Close(f)
			}
			return false, nil, fmt.Errorf("bad message from container init: %w", err)
		}
		return true, fds, nil
	}
}

// socketpair returns a connected SOCK_SEQPACKET pair, close-on-exec.
func socketpair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "init-sync-parent"), os.NewFile(uintptr(fds[1]), "init-sync-child"), nil
}
