// Command ctrd is the ctr container engine daemon. All of its wiring lives
// in package daemon; this is only the process entry point.
package main

import (
	"os"

	"example.org/ctr/daemon"
	"example.org/ctr/drivers/exec/native"
)

func main() {
	// A container's first process, or a process joining a container, is
	// this binary re-executed by the native exec driver: it never returns.
	native.Init()
	os.Exit(daemon.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
