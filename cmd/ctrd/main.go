// Command ctrd is the ctr container engine daemon. All of its wiring lives
// in package daemon; this is only the process entry point.
package main

import (
	"os"

	"example.org/ctr/daemon"
)

func main() {
	os.Exit(daemon.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
