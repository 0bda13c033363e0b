#!/usr/bin/env bash
# run.sh [--once]: the `make run` demo. Starts the built ctrd the way systemd
# would, by socket activation (systemd-socket-activate hands it a listening
# socket named "api"), on a private socket and state folder under
# /tmp/ctr-run so that it never clobbers a real install; waits for READY=1
# (scripts/notifywait plays systemd's side of sd_notify); then talks to it
# with ctrctl and the docker CLI: builds a busybox image
# (scripts/busybox-image.sh), loads it, runs a container with ctrctl and one
# with docker, and says what to try next.
#
# Without --once ctrd keeps running until Ctrl-C; with --once it is stopped
# at the end. Either way the containers in the private folder are removed
# first, then ctrd is stopped with SIGTERM, as systemctl stop does.
# CTR_RUN_DIR moves the private folder elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

once=0
for a in "$@"; do
	case "$a" in
	--once) once=1 ;;
	-h | --help)
		sed -n '2,15s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "run.sh: unknown argument $a (try --help)" >&2
		exit 2
		;;
	esac
done

dir=${CTR_RUN_DIR:-/tmp/ctr-run}
sock=$dir/ctr.sock
host=unix://$sock
ctrctl=$repo/bin/ctrctl
ctrd=$repo/bin/ctrd
for b in "$ctrd" "$ctrctl"; do
	[ -x "$b" ] || { echo "run.sh: $b is missing (make build)" >&2; exit 1; }
done
command -v systemd-socket-activate >/dev/null || { echo "run.sh: systemd-socket-activate is missing (make deps)" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
	echo "run.sh: note: not root; ctrd may refuse what needs root" >&2
fi

mkdir -p "$dir"
if [ -s "$dir/ctrd.pid" ] && kill -0 "$(cat "$dir/ctrd.pid")" 2>/dev/null; then
	echo "run.sh: a ctrd from an earlier make run still runs (pid $(cat "$dir/ctrd.pid")); stop it first: kill $(cat "$dir/ctrd.pid")" >&2
	exit 1
fi
rm -f "$sock" "$dir/notify.sock" "$dir/ctrd.pid"

# step CMD...: show the command a user would type (bold on a terminal).
if [ -t 1 ]; then
	step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
else
	step() { printf '\n$ %s\n' "$*"; }
fi

# Play systemd's side of sd_notify.
tools=$(mktemp -d /tmp/ctr-run-tools.XXXXXX)
go build -o "$tools/notifywait" ./scripts/notifywait
"$tools/notifywait" -socket "$dir/notify.sock" >"$dir/notify.log" 2>&1 &
notify_pid=$!

ctrd_pid=
ready=0
stopped=0
stop() {
	[ "$stopped" -eq 0 ] || return 0
	stopped=1
	if [ -n "$ctrd_pid" ] && kill -0 "$ctrd_pid" 2>/dev/null; then
		# Containers first: they would outlive ctrd (that is the point of
		# their monitors), here in a private folder nobody looks after.
		if [ "$ready" -eq 1 ]; then
			local ids
			ids=$(timeout 60 "$ctrctl" -H "$host" ps -a -q 2>/dev/null || true)
			if [ -n "$ids" ]; then
				echo
				echo "removing the demo's containers: $(echo $ids)"
				# shellcheck disable=SC2086
				timeout 120 "$ctrctl" -H "$host" rm -f $ids >/dev/null || echo "run.sh: could not remove every container" >&2
			fi
			timeout 60 "$ctrctl" -H "$host" network prune -f >/dev/null 2>&1 || true
		fi
		echo
		echo "stopping ctrd (pid $ctrd_pid) with SIGTERM"
		kill -TERM "$ctrd_pid" 2>/dev/null || true
		local rc=0
		wait "$ctrd_pid" || rc=$?
		echo "ctrd exited with status $rc; what it told systemd:"
		sed 's/^/  notify: /' "$dir/notify.log"
	fi
	kill "$notify_pid" 2>/dev/null || true
	wait "$notify_pid" 2>/dev/null || true
	rm -rf "$tools"
	ip netns delete "$netns" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq 100); do [ -S "$dir/notify.sock" ] && break; sleep 0.05; done

# ctrd's networks (the ctr0 bridge, NAT rules) live in a network namespace
# of the demo's own, so that it never changes this host's interfaces or
# firewall; the API socket is a file, reachable from here all the same.
netns=ctrtrun$$
ip netns delete "$netns" 2>/dev/null || true
ip netns add "$netns"
ip -n "$netns" link set lo up

# systemd-socket-activate binds the socket now and execs ctrd (in place: the
# pid stays) when the first client connects; that client's request waits in
# the backlog meanwhile, as under ctr.socket.
systemd-socket-activate -l "$sock" --fdname=api \
	-E NOTIFY_SOCKET="$dir/notify.sock" \
	nsenter --net=/run/netns/"$netns" "$ctrd" -H fd:// --root "$dir/root" --exec-root "$dir/exec" \
	--pidfile "$dir/ctrd.pid" --dbus=none >"$dir/ctrd.log" 2>&1 &
ctrd_pid=$!
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "run.sh: systemd-socket-activate did not bind $sock; see $dir/ctrd.log" >&2; exit 1; }
echo "listening on $sock (systemd-socket-activate, pid $ctrd_pid); ctrd starts on the first connection"

step ctrctl -H "$host" version
timeout 60 "$ctrctl" -H "$host" version

# READY=1 comes before the first answer; the wait is a formality here.
for _ in $(seq 600); do
	grep -q 'READY=1' "$dir/notify.log" && break
	kill -0 "$ctrd_pid" 2>/dev/null || { echo "run.sh: ctrd exited; its log:" >&2; cat "$dir/ctrd.log" >&2; exit 1; }
	sleep 0.1
done
grep -q 'READY=1' "$dir/notify.log" || { echo "run.sh: ctrd said no READY=1 within 60s" >&2; exit 1; }
ready=1
echo
echo "ctrd said: $(grep -m1 'READY=1' "$dir/notify.log")"

step ctrctl -H "$host" info
timeout 60 "$ctrctl" -H "$host" info

if command -v docker >/dev/null; then
	step docker -H "$host" version
	timeout 60 docker -H "$host" version
fi

# A container: an image built here without network (busybox-static), loaded
# as a user would load a `docker save` archive.
step scripts/busybox-image.sh "$dir/busybox.tar"
scripts/busybox-image.sh "$dir/busybox.tar"
step ctrctl -H "$host" load -i "$dir/busybox.tar"
# The state folder outlives a run: an image loaded by an earlier one is
# kept (and the same archive is not loaded twice).
if [ -n "$(timeout 60 "$ctrctl" -H "$host" images -q busybox:latest)" ]; then
	echo "busybox:latest is loaded already (from an earlier make run, in $dir/root)"
else
	timeout 120 "$ctrctl" -H "$host" load -i "$dir/busybox.tar"
fi
step ctrctl -H "$host" run --rm busybox echo hello from a ctr container
timeout 120 "$ctrctl" -H "$host" run --rm busybox echo hello from a ctr container
if command -v docker >/dev/null; then
	step docker -H "$host" run --rm busybox sh -c "'echo hello from docker run, served by ctrd; uname -n'"
	timeout 120 docker -H "$host" run --rm busybox sh -c 'echo hello from docker run, served by ctrd; uname -n'
fi
step ctrctl -H "$host" network create demo
timeout 60 "$ctrctl" -H "$host" network rm demo >/dev/null 2>&1 || true
timeout 60 "$ctrctl" -H "$host" network create demo
step ctrctl -H "$host" run -d --name web --network demo -p 8080:80 busybox httpd -f -p 80 -h /etc
timeout 60 "$ctrctl" -H "$host" rm -f web >/dev/null 2>&1 || true
timeout 120 "$ctrctl" -H "$host" run -d --name web --network demo -p 8080:80 busybox httpd -f -p 80 -h /etc
step ctrctl -H "$host" run --rm --network demo busybox wget -qO- http://web/hostname
timeout 120 "$ctrctl" -H "$host" run --rm --network demo busybox wget -qO- http://web/hostname

cat <<EOT

ctrd runs (pid $ctrd_pid) on $sock; its state is under $dir/root,
its log in $dir/ctrd.log. Try, in another terminal:

  export CTR_HOST=$host
  $ctrctl info --format '{{.ServerVersion}}'
  $ctrctl run -d --name ticker busybox sh -c 'while :; do date; sleep 5; done'
  $ctrctl ps; $ctrctl logs -f ticker
  $ctrctl run --rm -it busybox sh
  $ctrctl jobs
  $ctrctl events --since 10m --until 0s
  DOCKER_HOST=$host docker info
  kill -HUP $ctrd_pid     # reload: RELOADING=1, then READY=1 in $dir/notify.log

Installed from the package (make deb), the same runs under systemd:
  systemctl enable --now ctr.socket; ctrctl version; journalctl -u ctr
EOT

if [ "$once" -eq 1 ]; then
	exit 0
fi
echo
echo "Press Ctrl-C to stop ctrd."
rc=0
wait "$ctrd_pid" || rc=$?
echo "ctrd exited by itself with status $rc; what it told systemd:"
sed 's/^/  notify: /' "$dir/notify.log"
ctrd_pid=
