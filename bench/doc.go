// Package bench is ctr's benchmark harness: it measures ctrd next to
// dockerd (Debian's docker.io) on the same machine in one run.
//
// The harness proper is run.sh (`make bench`), which drives
// cmd/ctrload; probe does the measuring and report keeps and renders the
// figures. This package holds the Go benchmarks of the same figures for
// `go test -bench`: they start the ctrd binary found in $CTRD or at
// bin/ctrd of the repository and are skipped, saying so, when it is not
// built.
package bench
