// Command sysprobe makes the system calls that a seccomp test asks for
// and prints, for each, "NAME ok" or "NAME ERRNO" (EPERM, ENOSYS, …). It
// is built static by the root tests and run inside containers. With
// "getpid N" it calls getpid N times and prints "getpid-ns NS", the time
// of one call (for the benchmark).
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	for i := 1; i < len(os.Args); i++ {
		var err error
		name := os.Args[i]
		switch name {
		case "keyctl":
			_, _, e := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(0xfffffffd) /* KEY_SPEC_SESSION_KEYRING */, 0)
			err = errOf(e)
		case "add_key":
			_, err = unix.AddKey("user", "ctrtest", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
		case "mount":
			err = unix.Mount("none", "/tmp", "tmpfs", 0, "")
		case "clone3":
			// An invalid clone_args size: EINVAL when clone3 is allowed
			// through, ENOSYS when the filter answers.
			_, _, e := unix.Syscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&[8]uint64{})), 1, 0)
			err = errOf(e)
		case "getpid":
			i++
			n, _ := strconv.Atoi(os.Args[i])
			start := time.Now()
			for j := 0; j < n; j++ {
				unix.Getpid()
			}
			if n > 0 {
				fmt.Println("getpid-ns", float64(time.Since(start).Nanoseconds())/float64(n))
			}
		default:
			fmt.Println(name, "unknown")
			continue
		}
		if err == nil {
			fmt.Println(name, "ok")
		} else if e, ok := err.(unix.Errno); ok {
			fmt.Println(name, unix.ErrnoName(e))
		} else {
			fmt.Println(name, err)
		}
	}
}

func errOf(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}
