// Command ctr-shim is what ctrd runs beside each container: the
// container's monitor ("ctr-shim monitor --exec-root DIR --id ID") and,
// re-executed by the monitor's native exec driver, the container's first
// process before it executes the user's command. It holds only those two
// entry points, so that it starts in a fraction of the time the whole ctrd
// binary needs to initialise; ctrd runs itself in its place when it is not
// installed (see package daemon).
package main

import (
	"fmt"
	"os"

	"example.org/ctr/drivers/exec/native"
	"example.org/ctr/monitor"
)

func main() {
	native.Init()
	if len(os.Args) > 1 && os.Args[1] == "monitor" {
		os.Exit(monitor.Main(os.Args[2:]))
	}
	fmt.Fprintln(os.Stderr, "ctr-shim: run by ctrd for each container (ctr-shim monitor --exec-root DIR --id ID); not a command of its own")
	os.Exit(2)
}
