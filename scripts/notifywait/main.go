// Command notifywait plays systemd's part of the sd_notify protocol for
// `make run`, where no systemd supervises ctrd: it binds a unixgram socket
// (give its path to ctrd as NOTIFY_SOCKET) and prints every message it
// receives, one line per message with its assignments separated by spaces,
// until it is killed or the process given with -pid exits.
//
// The protocol: https://www.freedesktop.org/software/systemd/man/sd_notify.html
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	path := flag.String("socket", "", "path of the unixgram socket to bind (required)")
	pid := flag.Int("pid", 0, "exit once this process has exited")
	flag.Parse()
	if *path == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*path, *pid); err != nil {
		fmt.Fprintln(os.Stderr, "notifywait:", err)
		os.Exit(1)
	}
}

// run receives and prints messages on a socket bound at path until a
// signal arrives or process pid (when not 0) is gone.
func run(path string, pid int) error {
	_ = os.Remove(path)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer os.Remove(path)
	defer conn.Close()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	buf := make([]byte, 64*1024)
	for {
		select {
		case <-sigs:
			return nil
		default:
		}
		if pid != 0 && syscall.Kill(pid, 0) == syscall.ESRCH {
			return nil
		}
		if err := conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			return err
		}
		n, _, err := conn.ReadFromUnix(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return err
		}
		msg := strings.TrimSpace(string(buf[:n]))
		fmt.Println(strings.ReplaceAll(msg, "\n", " "))
	}
}
