// Command ctrctl is the command-line client of ctrd; see package cli.
package main

import (
	"os"

	"example.org/ctr/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
