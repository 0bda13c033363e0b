// Package bench is ctr's benchmark harness: it measures ctrd next to
// dockerd (Debian's docker.io) on the same machine in one run, and for
// images and containers also next to podman, bare crun and runc, and
// tar -x.
//
// The harness proper is run.sh (`make bench`), which drives
// cmd/ctrload; probe does the measuring, archive makes the image the load
// section loads, and report keeps and renders the figures. This package
// holds the Go benchmarks of the start and API figures for `go test
// -bench`: they start the ctrd binary found in $CTRD or at bin/ctrd of the
// repository and are skipped, saying so, when it is not built; and root
// tests that check the harness's archive and life cycle against a ctrd
// they build.
package bench
