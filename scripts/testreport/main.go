// Command testreport reads the JSON events of `go test -json` on standard
// input and prints what a person wants from a test run: each package's
// result line as `go test` prints it, the full output of every failed test,
// the reason of every skip that says a tier did not run, and a closing line
// "TIER: N passed, N failed, N skipped". It exits 1 when a test or a
// package failed (a build failure included), else 0.
//
// With -tally FILE it also appends "passed failed skipped" to FILE, so that
// a run of several tiers can print one total at the end (-total FILE).
//
// The events are those of cmd/test2json: https://pkg.go.dev/cmd/test2json.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of `go test -json` output.
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
}

// counts tallies test outcomes.
type counts struct{ passed, failed, skipped int }

func main() {
	tier := flag.String("tier", "tests", "name printed before the closing counts")
	tally := flag.String("tally", "", "append the counts to this file")
	total := flag.String("total", "", "print the sum of the counts in this file and exit")
	flag.Parse()
	if *total != "" {
		os.Exit(printTotal(*total))
	}
	c, ok := report(os.Stdin, os.Stdout)
	fmt.Printf("%s: %d passed, %d failed, %d skipped\n", *tier, c.passed, c.failed, c.skipped)
	if *tally != "" {
		if err := appendTally(*tally, c); err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			ok = false
		}
	}
	if !ok {
		os.Exit(1)
	}
}

// report prints the report of the events in r to w. ok is false when a
// test or a package failed.
func report(r io.Reader, w io.Writer) (c counts, ok bool) {
	ok = true
	outputs := map[string]*strings.Builder{} // package + test → its output
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not an event: go vet or the linker speaking; pass it on.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "build-output":
			fmt.Fprint(w, e.Output)
		case "build-fail":
			ok = false
		case "output":
			if e.Test == "" {
				// Package-level lines: the result lines of go test
				// ("ok", "FAIL", "?"), panics, TestMain's own output. The
				// bare PASS/FAIL lines of -v add nothing.
				if t := strings.TrimSpace(e.Output); t != "PASS" && t != "FAIL" {
					fmt.Fprint(w, e.Output)
				}
				continue
			}
			b := outputs[key]
			if b == nil {
				b = &strings.Builder{}
				outputs[key] = b
			}
			b.WriteString(e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				if e.Action == "fail" {
					ok = false
				}
				continue
			}
			out := ""
			if b := outputs[key]; b != nil {
				out = b.String()
			}
			delete(outputs, key)
			switch e.Action {
			case "pass":
				c.passed++
			case "fail":
				c.failed++
				ok = false
				fmt.Fprint(w, out)
			case "skip":
				c.skipped++
				switch {
				case strings.Contains(out, "TIER NOT RUN"):
					fmt.Fprint(w, out)
				case strings.Contains(out, "TIER NOT SELECTED"):
					// The tier that selects it runs it.
				default:
					// Any other skip is named with its reason, so that
					// nothing is skipped unseen.
					fmt.Fprintf(w, "skipped %s %s: %s\n", e.Package, e.Test, skipReason(out))
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(w, "testreport: reading events:", err)
		ok = false
	}
	// A test still open here never finished: the binary died (a timeout, a
	// crash). Show what it said.
	for _, b := range outputs {
		fmt.Fprint(w, b.String())
		ok = false
	}
	return c, ok
}

// appendTally appends c to the file at path.
func appendTally(path string, c counts) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%d %d %d\n", c.passed, c.failed, c.skipped); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// printTotal prints the sum of the tallies in the file at path; it returns
// the exit code.
func printTotal(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		return 1
	}
	var sum counts
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var c counts
		if _, err := fmt.Sscan(l, &c.passed, &c.failed, &c.skipped); err != nil {
			fmt.Fprintf(os.Stderr, "testreport: bad tally line %q\n", l)
			return 1
		}
		sum.passed += c.passed
		sum.failed += c.failed
		sum.skipped += c.skipped
	}
	fmt.Printf("total: %d passed, %d failed, %d skipped\n", sum.passed, sum.failed, sum.skipped)
	return 0
}

// skipReason returns the last message line of a skipped test's output.
func skipReason(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "--- SKIP") && !strings.HasPrefix(l, "=== ") {
			return l
		}
	}
	return "(no reason given)"
}
