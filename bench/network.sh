#!/bin/bash
# bench/network.sh -- what ctr's networking costs, next to dockerd's, in one
# run. `make bench-network` runs it; bench/run.sh runs it as its "network"
# section.
#
# ctrd and dockerd each run in a network namespace of their own that this
# script makes (ctrtbc$$ and ctrtbd$$), each with its bridge and NAT rules
# there, never in the host's. Figures (medians):
#   run.bridge / run.port / run.none
#       `run --rm busybox true` with the default bridge, with -p 8080:80
#       and with --network none: ctrctl against ctrd, /usr/bin/docker
#       against dockerd; hyperfine, NET_RUNS runs each, taking turns
#   port.first_accept
#       from `run -d -p PORT:80 busybox httpd` returning to the first TCP
#       connection the host port accepts (from the daemon's namespace),
#       NET_ACCEPT_RUNS times
#   throughput.bridge / throughput.loopback
#       NET_MIB MiB through busybox nc: container to container over the
#       bridge, and the same two busybox processes over the namespace's
#       own loopback, no container (the floor)
# The table goes to stdout and $OUT/network.md; raw output to $OUT.
#
# Knobs: OUT (default /tmp/ctr-bench/network-<stamp>), NET_RUNS=100,
# NET_ACCEPT_RUNS=10, NET_MIB=512, CTRD, CTRCTL (default bin/ beside the
# repo), NO_DOCKER=1 (ctrd only). Needs root, hyperfine, docker.io,
# busybox-static, iproute2 (bench/deps.sh installs them).
set -uo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/.." && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-/tmp/ctr-bench/network-$STAMP}
NET_RUNS=${NET_RUNS:-100}
NET_ACCEPT_RUNS=${NET_ACCEPT_RUNS:-10}
NET_MIB=${NET_MIB:-512}
CTRD=${CTRD:-$REPO/bin/ctrd}
CTRCTL=${CTRCTL:-$(dirname "$CTRD")/ctrctl}
DOCKER=/usr/bin/docker
NO_DOCKER=${NO_DOCKER:-0}
mkdir -p "$OUT"
S=$(mktemp -d /tmp/ctrt-bench-net.XXXXXX)
NSC=ctrtbc$$ NSD=ctrtbd$$
CSOCK=$S/ctrd.sock DSOCK=$S/dockerd.sock
pids=()

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }
die() { log "network: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root"
for p in hyperfine busybox ip nsenter; do command -v $p >/dev/null || die "$p is missing (bench/deps.sh)"; done
[ -x "$CTRD" ] && [ -x "$CTRCTL" ] || die "$CTRD or $CTRCTL is missing (make build)"
if [ "$NO_DOCKER" != 1 ] && ! command -v dockerd >/dev/null; then
	log "dockerd is missing: ctrd only"; NO_DOCKER=1
fi
key_json_before=0; [ -e /etc/docker/key.json ] && key_json_before=1
pre_cgroups=$(ls -d /sys/fs/cgroup/*/docker 2>/dev/null)

cleanup() {
	set +e
	[ -S "$CSOCK" ] && ids=$(timeout 30 "$CTRCTL" -H unix://$CSOCK ps -aq) && [ -n "$ids" ] && timeout 60 "$CTRCTL" -H unix://$CSOCK rm -f $ids >/dev/null
	[ -S "$DSOCK" ] && ids=$(timeout 30 $DOCKER -H unix://$DSOCK ps -aq) && [ -n "$ids" ] && timeout 60 $DOCKER -H unix://$DSOCK rm -f $ids >/dev/null
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$p" 2>/dev/null; done
	ip netns delete $NSC 2>/dev/null; ip netns delete $NSD 2>/dev/null
	grep " $S/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$S"
	[ "$key_json_before" = 0 ] && rm -f /etc/docker/key.json && rmdir /etc/docker 2>/dev/null
	for cg in /sys/fs/cgroup/*/docker; do
		grep -qx "$cg" <<< "$pre_cgroups" || find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for ns in $NSC $NSD; do ip netns add $ns && ip -n $ns link set lo up || die "ip netns add $ns"; done
"$REPO/scripts/busybox-image.sh" "$S/busybox.tar" >/dev/null || die "busybox image"

wait_up() { for _ in $(seq 300); do timeout 5 "$@" version >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

echo '{}' > $S/daemon.json
log "starting ctrd in $NSC"
nsenter --net=/run/netns/$NSC "$CTRD" -H unix://$CSOCK --root $S/ctrd-root --exec-root $S/ctrd-exec \
	--config-file $S/daemon.json --dbus=none --log-level warn > "$OUT/ctrd.log" 2>&1 &
pids+=($!)
wait_up "$CTRCTL" -H unix://$CSOCK || die "ctrd did not answer (see $OUT/ctrd.log)"
C=("$CTRCTL" -H unix://$CSOCK)
"${C[@]}" load -q -i $S/busybox.tar >/dev/null || die "ctrctl load"

if [ "$NO_DOCKER" != 1 ]; then
	log "starting dockerd (with docker0 and iptables) in $NSD"
	nsenter --net=/run/netns/$NSD dockerd --data-root $S/docker-root --exec-root $S/docker-exec -H unix://$DSOCK \
		--pidfile $S/dockerd.pid --storage-driver=overlay2 > "$OUT/dockerd.log" 2>&1 &
	pids+=($!)
	if wait_up $DOCKER -H unix://$DSOCK; then
		D=($DOCKER -H unix://$DSOCK)
		"${D[@]}" load -q -i $S/busybox.tar >/dev/null || { log "docker load failed"; NO_DOCKER=1; }
	else
		log "dockerd did not answer (see $OUT/dockerd.log): ctrd only"; NO_DOCKER=1
	fi
fi

# run: hyperfine, the commands of both daemons in one run (taking turns
# per command).
cmds=(
	-n "ctrd bridge" "${C[*]} run --rm busybox true"
	-n "ctrd -p" "${C[*]} run --rm -p 8080:80 busybox true"
	-n "ctrd none" "${C[*]} run --rm --network none busybox true"
)
if [ "$NO_DOCKER" != 1 ]; then
	cmds+=(
		-n "dockerd bridge" "${D[*]} run --rm busybox true"
		-n "dockerd -p" "${D[*]} run --rm -p 8080:80 busybox true"
		-n "dockerd none" "${D[*]} run --rm --network none busybox true"
	)
fi
log "run: $NET_RUNS runs of each"
hyperfine -N --warmup 3 --runs "$NET_RUNS" --export-json "$OUT/run.json" "${cmds[@]}" > "$OUT/hyperfine.txt" 2>&1 ||
	die "hyperfine failed (see $OUT/hyperfine.txt)"
median() { python3 -c 'import json,sys; r={x["command"]: x["median"]*1000 for x in json.load(open(sys.argv[1]))["results"]}; print("%.1f" % r[sys.argv[2]] if sys.argv[2] in r else "-")' "$OUT/run.json" "$1"; }

# first accept: from the CLI's return to the first accepted connection.
first_accept() { # NS CLI...
	local ns=$1; shift
	local vals=() i port t0 t1 id
	for ((i = 0; i < NET_ACCEPT_RUNS; i++)); do
		port=$((18000 + i))
		t0=${EPOCHREALTIME/./}
		id=$("$@" run -d -p $port:80 busybox httpd -f -p 80 -h /etc) || return 1
		t1=$(nsenter --net=/run/netns/$ns bash -c "for _ in \$(seq 100000); do exec 3<>/dev/tcp/127.0.0.1/$port 2>/dev/null && break; done; echo \${EPOCHREALTIME/./}")
		# from the return of run -d: the CLI's own time is not counted
		vals+=($(( (t1 - t0) / 1000 )))
		"$@" rm -f "$id" >/dev/null
	done
	printf '%s\n' "${vals[@]}" | sort -n | awk '{v[NR]=$1} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'
}
# t0 above is taken before run -d; measure run -d alone to subtract it.
run_d() { # CLI...
	local vals=() i id t0 t1
	for ((i = 0; i < NET_ACCEPT_RUNS; i++)); do
		t0=${EPOCHREALTIME/./}
		id=$("$@" run -d -p $((19000 + i)):80 busybox httpd -f -p 80 -h /etc) || return 1
		t1=${EPOCHREALTIME/./}
		vals+=($(( (t1 - t0) / 1000 )))
		"$@" rm -f "$id" >/dev/null
	done
	printf '%s\n' "${vals[@]}" | sort -n | awk '{v[NR]=$1} END {print (NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'
}
log "first accept: $NET_ACCEPT_RUNS runs each"
c_acc=$(first_accept $NSC "${C[@]}"); c_rund=$(run_d "${C[@]}")
d_acc=-; d_rund=-
if [ "$NO_DOCKER" != 1 ]; then d_acc=$(first_accept $NSD "${D[@]}"); d_rund=$(run_d "${D[@]}"); fi

# throughput: NET_MIB MiB through nc.
through() { # NS CLI...  (container to container)
	local ns=$1; shift
	"$@" rm -f ctrtsink >/dev/null 2>&1
	"$@" run -d --name ctrtsink busybox sh -c 'nc -l -p 5001 > /dev/null' >/dev/null || return 1
	local ip; ip=$("$@" inspect -f '{{.NetworkSettings.Networks.bridge.IPAddress}}' ctrtsink)
	sleep 0.3
	local t0 t1
	t0=${EPOCHREALTIME/./}
	"$@" run --rm busybox sh -c "dd if=/dev/zero bs=1M count=$NET_MIB 2>/dev/null | nc -w 5 $ip 5001" || return 1
	t1=${EPOCHREALTIME/./}
	"$@" rm -f ctrtsink >/dev/null
	awk -v m=$NET_MIB -v us=$((t1 - t0)) 'BEGIN {printf "%.0f", m / (us / 1e6)}'
}
loopback() {
	nsenter --net=/run/netns/$NSC busybox sh -c 'busybox nc -l -p 5002 > /dev/null' &
	local p=$!; sleep 0.3
	local t0 t1
	t0=${EPOCHREALTIME/./}
	nsenter --net=/run/netns/$NSC busybox sh -c "dd if=/dev/zero bs=1M count=$NET_MIB 2>/dev/null | busybox nc -w 5 127.0.0.1 5002"
	t1=${EPOCHREALTIME/./}
	wait $p 2>/dev/null
	awk -v m=$NET_MIB -v us=$((t1 - t0)) 'BEGIN {printf "%.0f", m / (us / 1e6)}'
}
log "throughput: $NET_MIB MiB"
c_tp=$(through $NSC "${C[@]}"); lo_tp=$(loopback); d_tp=-
[ "$NO_DOCKER" != 1 ] && d_tp=$(through $NSD "${D[@]}")

{
	echo "| figure | ctrd | dockerd | floor |"
	echo "|---|---:|---:|---:|"
	echo "| run --rm busybox true, default bridge (ms) | $(median 'ctrd bridge') | $(median 'dockerd bridge') | |"
	echo "| the same with -p 8080:80 (ms) | $(median 'ctrd -p') | $(median 'dockerd -p') | |"
	echo "| the same with --network none (ms) | $(median 'ctrd none') | $(median 'dockerd none') | |"
	echo "| run -d -p: start of the CLI to first accepted connection (ms) | $c_acc | $d_acc | |"
	echo "| run -d -p: the CLI alone (ms) | $c_rund | $d_rund | |"
	echo "| container to container over the bridge, nc (MiB/s) | $c_tp | $d_tp | $lo_tp (loopback) |"
} | tee "$OUT/network.md"
log "results in $OUT"
