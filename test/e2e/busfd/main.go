// Command busfd is a D-Bus client for ctr's end-to-end tests, for what
// busctl cannot do: pass file descriptors. It connects to the system bus
// and prints one line: "ok", "ok VALUE", or the D-Bus error's name and
// message; it exits 0 either way, and 2 when it cannot connect.
//
//	busfd load FILE      LoadImage with FILE open for reading; prints the job
//	busfd fdarray        org.freedesktop.DBus.Properties.Get on ctrd with an
//	                     array of two file descriptors (of /dev/null) attached
package main

import (
	"errors"
	"fmt"
	"os"

	godbus "github.com/godbus/dbus/v5"
)

const (
	busName     = "org.example.Ctr"
	managerPath = "/org/example/Ctr"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: busfd load FILE | busfd fdarray")
		os.Exit(2)
	}
	conn, err := godbus.ConnectSystemBus()
	if err != nil {
		fmt.Fprintln(os.Stderr, "busfd:", err)
		os.Exit(2)
	}
	defer conn.Close()
	mgr := conn.Object(busName, managerPath)
	var value string
	switch os.Args[1] {
	case "load":
		var f *os.File
		if f, err = os.Open(os.Args[2]); err == nil {
			var job godbus.ObjectPath
			err = mgr.Call(busName+".LoadImage", 0, godbus.UnixFD(f.Fd())).Store(&job)
			value = string(job)
			f.Close()
		}
	case "fdarray":
		var f *os.File
		if f, err = os.Open("/dev/null"); err == nil {
			fd := godbus.UnixFD(f.Fd())
			var v godbus.Variant
			err = mgr.Call("org.freedesktop.DBus.Properties.Get", 0, busName, "Version", []godbus.UnixFD{fd, fd}).Store(&v)
			f.Close()
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	var dbusErr godbus.Error
	switch {
	case errors.As(err, &dbusErr):
		fmt.Println(dbusErr.Name, dbusErr.Error())
	case err != nil:
		fmt.Println("error", err)
	case value != "":
		fmt.Println("ok", value)
	default:
		fmt.Println("ok")
	}
}
