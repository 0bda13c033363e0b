// Package probe measures a daemon that speaks the Docker Engine API over a
// unix socket: how long it takes from exec to READY=1 and to its first
// answered GET /_ping, how it answers when socket-activated, how much
// memory it holds, how fast it serves a request in a loop or under
// concurrency, and how long a container's create, start, wait and remove
// take over its API, with the arrival of the matching events.
//
// It is the measuring half of ctr's benchmark harness (bench/run.sh runs it
// through cmd/ctrload; bench's Go benchmarks call it directly). Every
// process it starts is its child, in its own process group, identified by
// PID and start time so that a recycled PID is never signalled, and stopped
// together with its descendants.
//
// The readiness protocol is sd_notify(3): a unixgram socket whose path is
// passed in NOTIFY_SOCKET, on which the daemon sends newline-separated
// KEY=VALUE assignments, READY=1 among them.
// https://www.freedesktop.org/software/systemd/man/latest/sd_notify.html
package probe
