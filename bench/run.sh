#!/bin/bash
# bench/run.sh -- ctr's benchmark harness: ctrd next to dockerd (and, for
# containers, podman and the bare OCI runtimes), in one run, on this
# machine. `make bench` runs it.
#
#   bench/run.sh [SECTION...]
#        (default: start rss api activation load run lifecycle dbus cli)
#
# SECTIONS
#   start       exec -> READY=1 (on a NOTIFY_SOCKET the harness listens on,
#               as systemd would) and exec -> first GET /_ping 200; cold
#               (fresh --root/--exec-root before every start) and warm
#               (root reused); one unmeasured start first; medians of RUNS
#   rss         VmRSS IDLE seconds after start (dockerd: with its containerd)
#   api         GET /version and GET /_ping over the unix socket, keep-alive:
#               c=1 (median, p99) and C concurrent clients (throughput)
#   activation  systemd-socket-activate -l SOCK --fdname=api DAEMON -H fd://:
#               first connect -> first answer (and -> READY=1), warm and cold
#   load        a generated docker save archive (LOAD_MIB MiB of files of
#               mixed sizes in LOAD_LAYERS layers): `ctrctl load -q -i` into
#               ctrd, `docker load -q -i` into dockerd (quiet: no progress
#               stream, as docker's CLI asks anyway when its output is not a
#               terminal), each on a fresh root,
#               and the floor: `tar -x` of the same layer tars into fresh
#               folders on the same file system; one unmeasured round, then
#               medians of LOAD_RUNS
#   run         `ctrctl run --rm busybox:latest true` against `docker run
#               --rm` (default network, and --network none), `podman run
#               --rm --network none` (crun and runc) and the floor: bare
#               `crun run` and `runc run` of an OCI bundle of the same
#               root file system (read-only; pid, net, ipc, uts, mount
#               namespaces); hyperfine, RUN_RUNS runs each in RUN_ROUNDS
#               rounds, one warm-up run per command and round
#   lifecycle   N_LIFE create/start/wait/rm cycles over the API, ctrd,
#               dockerd and the podman service taking turns cycle by cycle;
#               phase medians, and the arrival of the create, start and
#               destroy events after the API answer (GET /events)
#   dbus        go test -bench BenchmarkVersion ./dbus: Version over the
#               bus (godbus client in process, private dbus-daemon) and
#               over HTTP, same process; medians and p99 of DBUS_COUNT runs
#   cli         the docker CLI against each daemon: `docker version`, `docker
#               run --rm busybox true`, and `docker exec C true` into a running
#               busybox, next to the floor `nsenter -a -t PID true` into the
#               same container (and `ctrctl exec`); hyperfine as in run
#   pull        (only when named) bench/pull.sh: the pull of a generated
#               240 MiB image of 4 layers from docker-registry on loopback,
#               fresh and with all but one layer present: ctrd, dockerd,
#               podman and the floor (curl of the blobs at once + tar -xzf)
# Wherever tools are compared they take turns (round by round, order
# alternating), so that other work on the shared machine weighs on all of
# them alike.
#
# Every figure goes to $OUT/results.tsv (key, target, value, unit, label,
# detail) and the side-by-side table to $OUT/table.md and stdout. $OUT
# defaults to /tmp/ctr-bench/<UTC stamp>; logs are in $OUT/logs.
#
# Knobs (environment):
#   OUT         output folder
#   TARGETS     daemons, in column order (default "ctrd dockerd"); the
#               table adds columns podman and floor when they have figures
#   SOURCE=head what ctrd is built from: "head" (an export of the
#               committed HEAD, so the figures belong to one commit), a
#               commit or other revision (an export of it), or "tree" (the
#               working tree as it is, with others' unfinished work); the
#               dbus section's test runs from the same source
#   CTRD, CTRCTL  binaries to measure instead (CTRCTL default: beside CTRD)
#   RUNS=5      measured starts per start/activation figure
#   IDLE=5      seconds between start and the RSS reading
#   N_SEQ=2000  requests at c=1;  N_CONC=4000 requests at C;  C=16
#   N_PING=20000 requests for /_ping at C
#   MAX_LOAD=30 seconds cap on each load run
#   LOAD_MIB=220 LOAD_LAYERS=4 LOAD_RUNS=5   the load section
#   RUN_RUNS=20 RUN_ROUNDS=5                  the run section
#   N_LIFE=50   cycles per daemon;  PODMAN=1  podman in run and lifecycle
#   HUGETLB_FIX=1  let the run section move hugetlb off cgroup2 for crun
#   DBUS_N=2000 calls per benchmark run; DBUS_COUNT=3 runs
#   QUIET_WAIT=0 wait up to this many seconds for the CPUs to be less than
#               QUIET_MAX=25 percent busy before starting (the machine is shared)
#   NO_DEPS=1   do not run bench/deps.sh (apt-get of what is missing)
#
# dockerd (Debian's docker.io) runs as the anchors run it (see
# /work/shared/anchors/BASELINES.md): private --data-root, --exec-root, -H,
# --pidfile, --bridge=none, no iptables, no forwarding, no masquerading,
# overlay2; the docker CLI is /usr/bin/docker (Debian's, not another one
# earlier on PATH). ctrd gets private --root/--exec-root/-H/--pidfile,
# --dbus=none, --log-level warn, and the same network-off flags when it has
# them. podman gets private --root/--runroot/--tmpdir and a containers.conf
# (cgroupfs, file events, rlimits this machine allows, a private network
# config folder), and every container --network none. No traffic leaves
# the unix sockets; no firewall rule is made.
#
# crun 1.8 refuses to run on this machine's hybrid cgroup layout while the
# hugetlb controller sits on cgroup2 (/sys/fs/cgroup/unified). For the run
# section only, the harness binds hugetlb to a v1 hierarchy at
# /sys/fs/cgroup/hugetlb and undoes it at the section's end (and on exit);
# every command of the section runs in that same layout. HUGETLB_FIX=0
# leaves the host alone (crun is then not measured).
#
# Everything the harness starts is recorded as PID:START and stopped with its
# descendants, also on failure or Ctrl-C (trap); then every process that was
# given a path inside the harness's scratch folder (ctrd's container
# monitors, which run in a session of their own and outlive ctrd; podman's
# conmon) is stopped too. Containers are removed before their daemon stops.
# At exit it removes its scratch folder (roots, sockets), the files dockerd
# and podman leave outside their roots (/etc/docker/key.json, /run/docker,
# /run/containerd, /run/containers, /run/libpod, /etc/containers/networks;
# /run/crun, /run/runc, /run/netns only when empty), the cgroups of ctrd's
# containers, and the docker/, ctr/, libpod_parent/ and ctrbench-true/
# cgroups, each only if it did not exist before the run; it warns about any
# path ctrd created outside its private roots.
#
# Needs: root, Go, and what bench/deps.sh installs. Takes five to ten
# minutes, depending on how busy the machine is.
set -uo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/.." && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-/tmp/ctr-bench/$STAMP}
read -r -a TARGETS <<< "${TARGETS:-ctrd dockerd}"   # the daemons' columns
MEASURED=("${TARGETS[@]}")                           # less those that cannot run
SOURCE=${SOURCE:-head}
RUNS=${RUNS:-5}
IDLE=${IDLE:-5}
N_SEQ=${N_SEQ:-2000}
N_CONC=${N_CONC:-4000}
N_PING=${N_PING:-20000}
C=${C:-16}
MAX_LOAD=${MAX_LOAD:-30}
LOAD_MIB=${LOAD_MIB:-220}
LOAD_LAYERS=${LOAD_LAYERS:-4}
LOAD_RUNS=${LOAD_RUNS:-5}
RUN_RUNS=${RUN_RUNS:-20}
RUN_ROUNDS=${RUN_ROUNDS:-5}
N_LIFE=${N_LIFE:-50}
PODMAN=${PODMAN:-1}
HUGETLB_FIX=${HUGETLB_FIX:-1}
DBUS_N=${DBUS_N:-2000}
DBUS_COUNT=${DBUS_COUNT:-3}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
DOCKER=/usr/bin/docker

SECTIONS=("$@")
[ ${#SECTIONS[@]} -eq 0 ] && SECTIONS=(start rss api activation load run lifecycle dbus cli)

DOCKER_FLAGS=(--bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false
              --storage-driver=overlay2 --insecure-registry 127.0.0.1:5000)
# paths dockerd and podman write outside their private roots (anchors,
# note 8): removed at exit when new
SIDE=(/etc/docker/key.json /etc/docker /run/docker /run/containerd
      /run/containers /run/libpod /etc/containers/networks)
# shared folders the runtimes may create: removed at exit when new and empty
SIDE_EMPTY=(/run/crun /run/runc /run/netns)
# paths a ctrd given private roots should not touch; reported, never removed
CTRD_SIDE=(/run/ctr /run/ctr.sock /var/lib/ctr)
# top-level cgroups the daemons and runtimes may create in each hierarchy
CGROUP_NAMES=(docker ctr libpod_parent ctrbench-true)

# ------------------------------------------------------------------ preflight
[ "$(id -u)" = 0 ] || { echo "run.sh: run as root" >&2; exit 1; }
if [ "${NO_DEPS:-0}" != 1 ]; then
  "$REPO/bench/deps.sh" >&2 || { echo "run.sh: bench/deps.sh failed (NO_DEPS=1 skips it)" >&2; exit 1; }
fi
for c in "$GO" dockerd "$DOCKER" systemd-socket-activate; do
  command -v "$c" >/dev/null || { echo "run.sh: missing $c (bench/deps.sh; Go)" >&2; exit 1; }
done
KNOWN_SECTIONS=" start rss api activation load run lifecycle dbus cli pull "
for s in "${SECTIONS[@]}"; do
  [[ $KNOWN_SECTIONS == *" $s "* ]] || { echo "run.sh: unknown section $s (known:$KNOWN_SECTIONS)" >&2; exit 2; }
done

mkdir -p "$OUT/bin" "$OUT/logs" || exit 1
STATE=$(mktemp -d /tmp/ctr-bench-run.XXXXXX) || exit 1   # roots, sockets, pids: short paths
TSV=$OUT/results.tsv
GOALS=$OUT/goals.tsv
LOAD=$OUT/bin/ctrload
PIDS=$STATE/pids
: > "$PIDS"

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/logs/run.log" >&2; }
loud() { log "!!!!!!!! $*"; }

# Record which side paths and cgroups exist now; cleanup removes only new ones.
mkdir -p "$STATE/pre"
for p in "${SIDE[@]}" "${SIDE_EMPTY[@]}" "${CTRD_SIDE[@]}"; do
  [ -e "$p" ] && touch "$STATE/pre/$(echo "$p" | tr / _)"
done
for n in "${CGROUP_NAMES[@]}"; do ls -d /sys/fs/cgroup/*/"$n" 2>/dev/null; done > "$STATE/pre/cgroups"
IP_FORWARD_BEFORE=$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)

# ------------------------------------------------------------------- cleanup
umount_under() { # umount everything mounted at or below $1, deepest first
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
}

# crun 1.8 refuses hybrid cgroups while hugetlb is on cgroup2: bind it to a
# v1 hierarchy for a while (hugetlb_fix_off undoes it).
HUGETLB_FIXED=0; HUGETLB_DIR_MADE=0
hugetlb_needed() { grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; }
hugetlb_fix_on() {
  [ "$HUGETLB_FIXED" = 1 ] && return 0
  hugetlb_needed || return 0
  [ "$HUGETLB_FIX" = 1 ] || return 1
  if [ ! -d /sys/fs/cgroup/hugetlb ]; then
    mkdir /sys/fs/cgroup/hugetlb || return 1
    HUGETLB_DIR_MADE=1
  fi
  if ! mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb; then
    [ "$HUGETLB_DIR_MADE" = 1 ] && rmdir /sys/fs/cgroup/hugetlb && HUGETLB_DIR_MADE=0
    return 1
  fi
  HUGETLB_FIXED=1
  log "hugetlb cgroup controller bound to a v1 hierarchy at /sys/fs/cgroup/hugetlb (for crun), until the section ends"
}
hugetlb_fix_off() {
  [ "$HUGETLB_FIXED" = 1 ] || return 0
  # The v1 hierarchy goes away (and hugetlb back to cgroup2) once it is
  # unmounted everywhere and has no child cgroups. Child removal is
  # asynchronous, and a mount namespace made meanwhile (another user's
  # systemd-nspawn machine) may hold a mount of it until it ends: remove
  # the children, wait, unmount, wait up to 30 s; then mount again and
  # retry; at last say who still holds it.
  local try i t0=$SECONDS
  for try in 1 2 3; do
    mountpoint -q /sys/fs/cgroup/hugetlb || mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb || break
    find /sys/fs/cgroup/hugetlb -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
    sleep 1
    umount /sys/fs/cgroup/hugetlb
    for ((i = 0; i < 300; i++)); do
      hugetlb_needed && break 2
      sleep 0.1
    done
    log "hugetlb is not back on cgroup2 30 s after umount (try $try)"
  done
  [ "$HUGETLB_DIR_MADE" = 1 ] && rmdir /sys/fs/cgroup/hugetlb && HUGETLB_DIR_MADE=0
  HUGETLB_FIXED=0
  if hugetlb_needed; then
    log "hugetlb is back on cgroup2 ($((SECONDS - t0)) s)"
  else
    local holders
    holders=$(grep -l ' - cgroup cgroup .*hugetlb' /proc/[0-9]*/mountinfo 2>/dev/null | cut -d/ -f3 | head -5 |
      while read -r p; do echo "$p:$(tr '\0' ' ' < "/proc/$p/cmdline" | cut -c1-60)"; done | tr '\n' ';')
    loud "hugetlb is still bound to a v1 hierarchy ($(grep hugetlb /proc/cgroups)); it returns to cgroup2 once nothing mounts it; mounted by: ${holders:-no process found}"
  fi
}

cleanup() {
  set +e
  log "cleanup: stopping what the harness started"
  declare -F daemons_down_all >/dev/null && daemons_down_all
  [ -x "$LOAD" ] && "$LOAD" stop --pids "$PIDS" --with-arg "$STATE" --timeout 20s >> "$OUT/logs/run.log" 2>&1
  wait 2>/dev/null
  runc --root "$STATE/runc-state" delete -f ctrbench-true >/dev/null 2>&1
  crun --root "$STATE/crun-state" delete -f ctrbench-true >/dev/null 2>&1
  hugetlb_fix_off
  umount_under "$STATE"
  local p cg stray=()
  for p in "${SIDE[@]}"; do
    [ -e "$p" ] && [ ! -e "$STATE/pre/$(echo "$p" | tr / _)" ] && { umount_under "$p"; rm -rf "$p"; log "removed $p"; }
  done
  for p in "${SIDE_EMPTY[@]}"; do
    [ -e "$STATE/pre/$(echo "$p" | tr / _)" ] || [ ! -d "$p" ] && continue
    mountpoint -q "$p" && [ -z "$(ls -A "$p")" ] && umount "$p"
    if rmdir "$p" 2>/dev/null; then log "removed $p"; else log "left $p in place: not empty"; fi
  done
  for p in "${CTRD_SIDE[@]}"; do
    [ -e "$p" ] && [ ! -e "$STATE/pre/$(echo "$p" | tr / _)" ] && stray+=("$p")
  done
  [ ${#stray[@]} -gt 0 ] && loud "paths outside the private roots appeared during the run (ctrd?), left in place: ${stray[*]}"
  for n in "${CGROUP_NAMES[@]}"; do
    for cg in /sys/fs/cgroup/*/"$n"; do
      [ -d "$cg" ] && ! grep -qx "$cg" "$STATE/pre/cgroups" &&
        find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
  done
  [ "$(cat /proc/sys/net/ipv4/ip_forward 2>/dev/null)" = "$IP_FORWARD_BEFORE" ] ||
    loud "net.ipv4.ip_forward changed during the run (was $IP_FORWARD_BEFORE), left as it is"
  rm -rf "$STATE"
  log "cleanup done; results in $OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------- build
log "output: $OUT"
(cd "$REPO" && "$GO" build -o "$LOAD" ./bench/cmd/ctrload) 2> "$OUT/logs/build-ctrload.log" ||
  { cat "$OUT/logs/build-ctrload.log" >&2; log "cannot build bench/cmd/ctrload"; exit 1; }
COMMIT=$(git -C "$REPO" describe --always --dirty --abbrev=40 --exclude "*" 2>/dev/null || echo unknown)
SRC=$REPO          # where ctrd is built and the dbus benchmark runs
if [ "$SOURCE" != tree ]; then
  REV=$SOURCE; [ "$REV" = head ] && REV=HEAD
  COMMIT=$(git -C "$REPO" rev-parse --verify "$REV^{commit}" 2>/dev/null) ||
    { echo "run.sh: SOURCE=$SOURCE is not a commit (head, tree or a revision)" >&2; exit 2; }
  SRC=$STATE/src
  mkdir -p "$SRC" && git -C "$REPO" archive "$COMMIT" | tar -x -C "$SRC" ||
    { loud "cannot export HEAD; measuring the working tree"; SRC=$REPO; SOURCE=tree
      COMMIT=$(git -C "$REPO" describe --always --dirty --abbrev=40 --exclude "*" 2>/dev/null || echo unknown); }
fi
CTRD_NOTE=""
if [ -n "${CTRD:-}" ]; then
  CTRD_NOTE="given binary $CTRD"
  CTRCTL=${CTRCTL:-$(dirname "$CTRD")/ctrctl}
elif make -C "$SRC" -s build GIT_COMMIT="${COMMIT:0:12}" > "$OUT/logs/build-ctrd.log" 2>&1 &&
     cp "$SRC/bin/ctrd" "$SRC/bin/ctrctl" "$OUT/bin/"; then
  # as `make build` makes them (static, version stamped); the copies are what was measured
  CTRD=$OUT/bin/ctrd; CTRCTL=$OUT/bin/ctrctl
  if [ "$SOURCE" != tree ]; then CTRD_NOTE="make build of $SOURCE = $COMMIT (git archive)"
  else CTRD_NOTE="make build in the working tree $REPO at $COMMIT"; fi
else
  CTRD=""
fi
if [ -z "$CTRD" ] || [ ! -x "$CTRD" ]; then
  if [[ " ${TARGETS[*]} " == *" ctrd "* ]]; then
    loud "ctrd IS NOT MEASURED: make build failed ($(tail -1 "$OUT/logs/build-ctrd.log" 2>/dev/null))"
    "$LOAD" record --tsv "$TSV" --target ctrd --key build --value "NOT BUILT" \
        --label "ctrd binary" --detail "make build failed; see logs/build-ctrd.log"
    T2=(); for t in "${MEASURED[@]}"; do [ "$t" = ctrd ] || T2+=("$t"); done; MEASURED=("${T2[@]}")
  fi
  CTRD=/nonexistent
fi
CTRCTL=${CTRCTL:-/nonexistent}
# the network stays off: pass ctrd the same switches when it has them
CTRD_FLAGS=(--dbus=none --log-level warn)
if [ -x "$CTRD" ]; then
  help=$(timeout 10 "$CTRD" --help 2>&1)
  for f in --bridge=none --iptables=false --ip-forward=false --ip-masq=false; do
    grep -q -- "${f%%=*}[ =]" <<< "$help" && CTRD_FLAGS+=("$f")
  done
fi
has_podman() { [ "$PODMAN" = 1 ] && command -v podman >/dev/null && command -v conmon >/dev/null; }

# The machine is shared: say how busy it is, and wait for a quiet moment
# when asked to (QUIET_WAIT seconds at most).
cpu_busy() { # percent of CPU time not idle over 3 s
  local a b
  read -r -a a < /proc/stat; sleep 3; read -r -a b < /proc/stat
  local ta=0 tb=0 i
  for i in 1 2 3 4 5 6 7 8; do ta=$((ta + a[i])); tb=$((tb + b[i])); done
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=$((tb - ta))
  echo $(( total > 0 ? 100 - 100 * idle / total : 0 ))
}
BUSY=$(cpu_busy)
if [ "${QUIET_WAIT:-0}" -gt 0 ] && [ "$BUSY" -gt "${QUIET_MAX:-25}" ]; then
  log "CPU ${BUSY}% busy with other work; waiting up to ${QUIET_WAIT} s for it to drop under ${QUIET_MAX:-25}%"
  end=$((SECONDS + QUIET_WAIT))
  while [ "$BUSY" -gt "${QUIET_MAX:-25}" ] && [ $SECONDS -lt $end ]; do BUSY=$(cpu_busy); done
fi
[ "$BUSY" -gt "${QUIET_MAX:-25}" ] && loud "the CPUs are ${BUSY}% busy with other work before the run: figures will be noisy"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $COMMIT (source: $SOURCE)"
  echo "tree: $(git -C "$REPO" status --porcelain 2>/dev/null | wc -l) paths differ from HEAD (others work in the same tree)"
  echo "ctrd: ${CTRD_NOTE:-not measured} $([ -x "$CTRD" ] && timeout 10 "$CTRD" version 2>&1 | tr '\n' ' ')"
  echo "ctrctl: $CTRCTL"
  echo "ctrd flags: ${CTRD_FLAGS[*]}"
  echo "dockerd flags: ${DOCKER_FLAGS[*]}; docker CLI $DOCKER"
  echo "kernel: $(uname -r); cpus: $(nproc); $(free -m | sed -n 2p)"
  echo "cgroups: $(stat -fc %T /sys/fs/cgroup); on cgroup2: $(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "busy before: ${BUSY}% of CPU time not idle over 3 s, other work"
  dpkg-query -W -f '${Package} ${Version}\n' docker.io containerd runc crun podman conmon hyperfine \
      busybox-static dbus systemd 2>/dev/null
  "$GO" version
} > "$OUT/env.txt"

# ------------------------------------------------------------------- daemons
sock_of() { echo "$STATE/$1.sock"; }
PBASE=$STATE/podman
PODMAN_G=(--root "$PBASE/root" --runroot "$PBASE/runroot" --tmpdir "$PBASE/tmp" --storage-driver overlay)
root_dirs() {
  case $1 in
    podman) echo "$PBASE/root" "$PBASE/runroot" "$PBASE/tmp" ;;
    *) echo "$STATE/$1-root" "$STATE/$1-exec" ;;
  esac
}
argv_of() { # target host -> ARGV
  local r e; read -r r e _ <<< "$(root_dirs "$1")"
  case $1 in
    ctrd) ARGV=("$CTRD" -H "$2" --root "$r" --exec-root "$e" --pidfile "$STATE/$1.pid" "${CTRD_FLAGS[@]}") ;;
    dockerd) ARGV=(dockerd -H "$2" --data-root "$r" --exec-root "$e" --pidfile "$STATE/$1.pid" "${DOCKER_FLAGS[@]}") ;;
    podman) ARGV=(podman "${PODMAN_G[@]}" system service --time=0 "$2") ;;
    *) log "unknown target $1"; return 1 ;;
  esac
}
# cli_of target -> CLI: the command line client of that daemon
cli_of() {
  case $1 in
    ctrd) CLI=("$CTRCTL" -H "unix://$(sock_of ctrd)") ;;
    dockerd) CLI=("$DOCKER" -H "unix://$(sock_of dockerd)") ;;
    podman) CLI=(podman "${PODMAN_G[@]}") ;;
  esac
}
fresh_roots() { # target: remove its roots
  local d; for d in $(root_dirs "$1"); do umount_under "$d"; rm -rf "$d"; done
}
# podman's configuration: this machine lacks CAP_SYS_RESOURCE, so
# podman's default rlimits (nofile 1048576) fail; cap them to what is
# allowed. cgroupfs (no systemd here), file events, a private network
# config folder (no container gets a network: --network none).
podman_setup() {
  [ -f "$PBASE/containers.conf" ] && return 0
  mkdir -p "$PBASE/net" || return 1
  local nofile nproc; nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  { [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; } && nproc=32768
  cat > "$PBASE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[network]
network_config_dir = "$PBASE/net"
EOF
  cp "$PBASE/containers.conf" "$OUT/podman-containers.conf"
  export CONTAINERS_CONF=$PBASE/containers.conf
}

proc_id() { # PID -> PID:START (start time is field 22 of /proc/PID/stat)
  local pid=$1 s; s=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  s=${s##*) }; set -- $s; echo "$pid:${20}"
}
# Daemons kept running for a section, each a child of this script.
declare -A UP_PID=() UP_PROC=()
daemon_up() { # target [fresh]: start the daemon unless it runs (on fresh roots if asked)
  local t=$1 sock; sock=$(sock_of "$t")
  [ -n "${UP_PID[$t]:-}" ] && return 0
  [ "${2:-}" = fresh ] && fresh_roots "$t"
  [ "$t" = podman ] && { podman_setup || return 1; }
  argv_of "$t" "unix://$sock" || return 1
  rm -f "$sock"
  echo "=== $t up $(date -u +%T)" >> "$OUT/logs/$t.log"
  "${ARGV[@]}" >> "$OUT/logs/$t.log" 2>&1 &
  UP_PID[$t]=$!
  UP_PROC[$t]=$(proc_id "$!") || UP_PROC[$t]=$!
  echo "${UP_PROC[$t]}" >> "$PIDS"
  "$LOAD" wait --sock "$sock" --pid "${UP_PROC[$t]}" --timeout 60s >/dev/null ||
    { log "$t did not come up (logs/$t.log)"; daemon_down "$t"; return 1; }
}
daemon_down() { # target: remove its containers, stop it and whatever it left running
  local t=$1 ids
  [ -n "${UP_PID[$t]:-}" ] || return 0
  if [ "$t" != podman ] && cli_of "$t"; then
    ids=$(timeout 30 "${CLI[@]}" ps -aq 2>/dev/null)
    [ -n "$ids" ] && timeout 60 "${CLI[@]}" rm -f $ids >> "$OUT/logs/$t.log" 2>&1
  fi
  "$LOAD" stop --timeout 30s "${UP_PROC[$t]}" >> "$OUT/logs/run.log" 2>&1
  wait "${UP_PID[$t]}" 2>/dev/null
  unset "UP_PID[$t]" "UP_PROC[$t]"
  if [ "$t" = ctrd ]; then
    # container monitors outlive ctrd by design; none of ours may stay
    local left; left=$("$LOAD" stop --with-arg "$STATE/ctrd-exec" --timeout 10s 2>&1)
    [ -n "$left" ] && loud "ctrd monitors were still running after ctrd stopped: $left"
    ctrd_cgroups_rm
  fi
  [ "$t" = podman ] && "$LOAD" stop --with-arg "$PBASE" --timeout 10s >> "$OUT/logs/run.log" 2>&1
  return 0
}
daemons_down_all() { local t; for t in "${!UP_PID[@]}"; do daemon_down "$t"; done; }
# ctrd's container cgroups (ctr/<id> in each hierarchy) of the containers
# in its root: the ctr/ parent may be shared with other ctrd instances.
ctrd_cgroups_rm() {
  local c id
  for c in "$STATE"/ctrd-root/containers/*/; do
    [ -d "$c" ] || continue
    id=$(basename "$c")
    rmdir /sys/fs/cgroup/*/ctr/"$id" 2>/dev/null
  done
  return 0
}

RES_TARGET=""; RES_PROC=""
resident_stop() { daemons_down_all; RES_TARGET=""; RES_PROC=""; }
resident_start() { # target: the only daemon up, for rss/api
  resident_stop
  daemon_up "$1" || return 1
  RES_TARGET=$1; RES_PROC=${UP_PROC[$1]}
}
fail() { # target key label: record a figure that could not be measured
  "$LOAD" record --tsv "$TSV" --target "$1" --key "$2" --value FAIL --label "$3" --detail "see logs/run.log and logs/$1.log"
}
section_load() { echo "load at $1: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/env.txt"; }

# The busybox image, a docker save archive all three load.
BUSYBOX=$STATE/busybox.tar
need_busybox() {
  [ -s "$BUSYBOX" ] && return 0
  TAG=busybox:latest "$SRC/scripts/busybox-image.sh" "$BUSYBOX" >> "$OUT/logs/run.log" 2>&1 ||
    { log "scripts/busybox-image.sh failed (busybox-static?)"; return 1; }
}
load_busybox() { # target: load the busybox image into it
  cli_of "$1"
  timeout 120 "${CLI[@]}" load -q -i "$BUSYBOX" >> "$OUT/logs/$1.log" 2>&1 ||
    { log "$1: loading busybox failed (logs/$1.log)"; return 1; }
}

# ------------------------------------------------------------------ sections
# spec_of target kind: write $STATE/<target>-<kind>.json, how ctrload starts
# the daemon directly (kind "direct") or behind systemd-socket-activate
# (kind "activated"), and print its path.
spec_of() {
  local t=$1 kind=$2 file=$STATE/$1-$2.json sock log=$OUT/logs/$1.log roots=() d
  for d in $(root_dirs "$t"); do roots+=(--root "$d"); done
  if [ "$kind" = direct ]; then
    sock=$(sock_of "$t"); argv_of "$t" "unix://$sock" || return 1
  else
    sock=$STATE/$t-act.sock; log=$OUT/logs/$t-activation.log; argv_of "$t" fd:// || return 1
    ARGV=(systemd-socket-activate -l "$sock" --fdname=api -E NOTIFY_SOCKET "${ARGV[@]}")
  fi
  "$LOAD" spec --file "$file" --target "$t" --sock "$sock" --notify "$STATE/$t-notify.sock" \
      "${roots[@]}" --log "$log" -- "${ARGV[@]}" || return 1
  echo "$file"
}
specs() { # kind -> SPECS (--spec FILE ...) for every measured target
  local t f; SPECS=()
  for t in "${MEASURED[@]}"; do f=$(spec_of "$t" "$1") && SPECS+=(--spec "$f"); done
  [ ${#SPECS[@]} -gt 0 ]
}
fail_all() { # key label: every measured target failed this figure
  local t; for t in "${MEASURED[@]}"; do fail "$t" "$1" "$2"; done
}

# start and activation: the daemons take turns, round by round, so that
# other work on the machine weighs on each alike.
sec_start() {
  resident_stop
  specs direct || return 1
  log "== start: ${MEASURED[*]} taking turns, cold ($RUNS rounds, fresh roots before every start)"
  "$LOAD" start --key start.cold --label "start, cold root" --tsv "$TSV" "${SPECS[@]}" --cold \
      --runs "$RUNS" --pids "$PIDS" || { log "start, cold failed"; fail_all start.cold.ping "start, cold root"; }
  log "== start: ${MEASURED[*]} taking turns, warm ($RUNS rounds, roots reused)"
  "$LOAD" start --key start.warm --label "start, warm root" --tsv "$TSV" "${SPECS[@]}" \
      --runs "$RUNS" --pids "$PIDS" || { log "start, warm failed"; fail_all start.warm.ping "start, warm root"; }
}

sec_rss() {
  local t
  for t in "${MEASURED[@]}"; do
    log "== rss: $t, ${IDLE} s after start"
    resident_start "$t" || { fail "$t" rss.idle.total "idle RSS ${IDLE} s after start"; continue; }
    sleep "$IDLE"
    "$LOAD" rss --target "$t" --key rss.idle --label "idle RSS ${IDLE} s after start" --tsv "$TSV" "$RES_PROC" ||
      fail "$t" rss.idle.total "idle RSS ${IDLE} s after start"
  done
  resident_stop
}

sec_api() {
  local t sock
  for t in "${MEASURED[@]}"; do
    [ "$RES_TARGET" = "$t" ] || resident_start "$t" || { fail "$t" api.version.c1.p50 "GET /version c=1"; continue; }
    sock=$(sock_of "$t")
    log "== api: $t"
    "$LOAD" http --target "$t" --key api.version.c1 --label "GET /version c=1" --tsv "$TSV" --sock "$sock" \
        --path /version -n "$N_SEQ" -c 1 --max "${MAX_LOAD}s" --figures p50,p99 || fail "$t" api.version.c1.p50 "GET /version c=1"
    "$LOAD" http --target "$t" --key "api.version.c$C" --label "GET /version c=$C" --tsv "$TSV" --sock "$sock" \
        --path /version -n "$N_CONC" -c "$C" --max "${MAX_LOAD}s" --figures rps,p50 || fail "$t" "api.version.c$C.rps" "GET /version c=$C"
    "$LOAD" http --target "$t" --key api.ping.c1 --label "GET /_ping c=1" --tsv "$TSV" --sock "$sock" \
        --path /_ping -n "$N_SEQ" -c 1 --max "${MAX_LOAD}s" --figures p50,p99 || fail "$t" api.ping.c1.p50 "GET /_ping c=1"
    "$LOAD" http --target "$t" --key "api.ping.c$C" --label "GET /_ping c=$C" --tsv "$TSV" --sock "$sock" \
        --path /_ping -n "$N_PING" -c "$C" --max "${MAX_LOAD}s" --figures rps || fail "$t" "api.ping.c$C.rps" "GET /_ping c=$C"
  done
  resident_stop
}

sec_activation() {
  resident_stop
  specs activated || return 1
  local mode cold
  for mode in warm cold; do
    cold=(); [ $mode = cold ] && cold=(--cold)
    log "== activation: ${MEASURED[*]} taking turns, $mode root ($RUNS rounds)"
    "$LOAD" activate --key "activation.$mode" --label "socket activation, $mode root" --tsv "$TSV" \
        "${SPECS[@]}" "${cold[@]}" --runs "$RUNS" --pids "$PIDS" ||
      { log "activation, $mode failed"; fail_all "activation.$mode.answer" "socket activation, $mode root"; }
  done
}

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }  # wall clock, ms

# load: each round, every daemon loads the archive into a fresh root and
# the floor extracts its layers into a fresh folder, in alternating order.
sec_load() {
  resident_stop
  local dir=$STATE/load info id mib files t round i t0 t1 order=() label
  mkdir -p "$dir"
  log "== load: generating a $LOAD_MIB MiB archive of $LOAD_LAYERS layers"
  info=$("$LOAD" image --out "$dir/image.tar" --layers-dir "$dir/layers" --mib "$LOAD_MIB" \
      --layers "$LOAD_LAYERS" --tag ctrbench/load:latest) || { log "ctrload image failed"; return 1; }
  echo "$info" >> "$OUT/logs/run.log"
  id=$(sed -n 's/.*id=\([^ ]*\).*/\1/p' <<< "$info")
  files=$(sed -n 's/.*files=\([0-9]*\).*/\1/p' <<< "$info")
  mib=$(awk -v b="$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<< "$info")" 'BEGIN {printf "%.0f", b / 1048576}')
  label="load a $mib MiB docker save archive ($LOAD_LAYERS layers, $files files of 0.5 KiB-24 MiB; floor: tar -x of its layers)"
  declare -A V=()
  local who=("${MEASURED[@]}" floor)
  log "== load: ${who[*]} taking turns (1 unmeasured round, then $LOAD_RUNS; fresh roots every time)"
  for ((round = 0; round <= LOAD_RUNS; round++)); do
    order=("${who[@]}")
    if ((round % 2)); then order=(); for ((i = ${#who[@]} - 1; i >= 0; i--)); do order+=("${who[$i]}"); done; fi
    for t in "${order[@]}"; do
      [ "${V[$t]:-}" = FAIL ] && continue
      if [ "$t" = floor ]; then
        rm -rf "$dir/floor"; mkdir -p "$dir/floor"; sync
        t0=$(now_ms)
        for ((i = 1; i <= LOAD_LAYERS; i++)); do
          mkdir "$dir/floor/$i" && tar -xf "$dir/layers/layer-$i.tar" -C "$dir/floor/$i" || { t0=FAIL; break; }
        done
        t1=$(now_ms)
        rm -rf "$dir/floor"
      else
        daemon_up "$t" fresh || { V[$t]=FAIL; continue; }
        cli_of "$t"; sync
        t0=$(now_ms)
        timeout 600 "${CLI[@]}" load -q -i "$dir/image.tar" >> "$OUT/logs/$t.log" 2>&1 || t0=FAIL
        t1=$(now_ms)
        # the image must be there, under the archive's image ID
        [ "$t0" != FAIL ] && ! timeout 30 "${CLI[@]}" images --no-trunc 2>/dev/null | grep -q "${id#sha256:}" &&
          { log "$t: image $id not listed after load"; t0=FAIL; }
        daemon_down "$t"; fresh_roots "$t"
      fi
      if [ "$t0" = FAIL ]; then log "load: $t failed in round $round (logs/$t.log)"; V[$t]=FAIL; continue; fi
      ((round > 0)) && V[$t]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", (b - a) / 1000}') "
      echo "load round $round $t: $((t1 - t0)) ms" >> "$OUT/logs/run.log"
    done
  done
  for t in "${who[@]}"; do
    if [ -z "${V[$t]:-}" ] || [ "${V[$t]}" = FAIL ]; then fail "$t" load.archive "$label"; continue; fi
    local d="ctrctl load -q -i (fresh --root)"
    case $t in dockerd) d="$DOCKER load -q -i (fresh --data-root)" ;; floor) d="tar -xf layer-N.tar -C DIR/N for each layer, fresh DIR on the daemons' file system" ;; esac
    # shellcheck disable=SC2086
    "$LOAD" median --tsv "$TSV" --target "$t" --key load.archive --label "$label" --unit s --detail "$d; sync before each" ${V[$t]}
    # shellcheck disable=SC2086
    "$LOAD" record --tsv "$TSV" --target "$t" --key load.archive.rate --unit MiB/s --label "load: throughput (archive size / median)" \
        --value "$(printf '%s\n' ${V[$t]} | sort -n | awk -v m="$mib" '{v[NR]=$1} END {x = NR % 2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.0f", m / x}')" \
        --detail "$mib MiB / median"
  done
  rm -rf "$dir"
}

# run: every command runs RUN_RUNS times in RUN_ROUNDS rounds of hyperfine,
# the order of the commands reversed every other round.
# hf_rounds NAME: hyperfine of ok_names/ok_cmds (the caller's arrays) in
# RUN_ROUNDS rounds, RUN_RUNS runs in all, the order reversed every other
# round; the JSON of each round that ran is added to the caller's files.
hf_rounds() {
  local name=$1 per=$(( (RUN_RUNS + RUN_ROUNDS - 1) / RUN_ROUNDS )) round args i j
  log "== $name: ${#ok_names[@]} commands, $RUN_ROUNDS rounds of $per runs each (order reversed every other round)"
  for ((round = 0; round < RUN_ROUNDS; round++)); do
    args=()
    for ((j = 0; j < ${#ok_names[@]}; j++)); do
      i=$j; ((round % 2)) && i=$((${#ok_names[@]} - 1 - j))
      args+=(-n "${ok_names[$i]}" "${ok_cmds[$i]}")
    done
    [ ${#args[@]} -gt 0 ] || break
    timeout 900 hyperfine -N --style basic --warmup 1 --runs "$per" --export-json "$OUT/logs/hf-$name-$round.json" \
        "${args[@]}" > "$OUT/logs/hf-$name-$round.txt" 2>&1 &&
      files+=("$OUT/logs/hf-$name-$round.json") || log "$name: hyperfine round $round failed (logs/hf-$name-$round.txt)"
  done
}

sec_run() {
  resident_stop
  command -v hyperfine >/dev/null || { log "run: hyperfine missing (bench/deps.sh)"; return 1; }
  need_busybox || return 1
  local bundle=$STATE/bundle t
  # the floor's bundle: the busybox image's root file system, runc's
  # default config (pid, net, ipc, uts, mount namespaces), read-only
  rm -rf "$bundle"; mkdir -p "$bundle/rootfs"
  tar -xOf "$BUSYBOX" --wildcards '*/layer.tar' | tar -x -C "$bundle/rootfs" &&
    runc spec -b "$bundle" && "$LOAD" ocispec --file "$bundle/config.json" --args true --readonly \
      --cgroups-path /ctrbench-true || { log "run: cannot make the OCI bundle"; return 1; }
  cp "$bundle/config.json" "$OUT/oci-config.json"
  local names=() cmds=() up=()
  for t in "${MEASURED[@]}"; do
    daemon_up "$t" fresh && load_busybox "$t" && up+=("$t") || fail "$t" run.rm "run --rm busybox true"
  done
  local podman_ok=0
  if has_podman; then
    fresh_roots podman; podman_setup && load_busybox podman && podman_ok=1
  else
    log "run: podman left out (PODMAN=$PODMAN; podman and conmon installed?)"
  fi
  local crun_ok=0
  if command -v crun >/dev/null; then
    if hugetlb_fix_on; then crun_ok=1; else log "run: crun needs the hugetlb fix (HUGETLB_FIX=0 or it failed): not measured"; fi
  fi
  add() { names+=("$1"); cmds+=("$2"); }
  for t in "${up[@]}"; do
    cli_of "$t"
    add "$t:run.rm" "${CLI[*]} run --rm busybox:latest true"
    add "$t:run.rm.netnone" "${CLI[*]} run --rm --network none busybox:latest true"
  done
  if [ $podman_ok = 1 ]; then
    [ $crun_ok = 1 ] && add "podman:run.rm" "podman ${PODMAN_G[*]} run --rm --network none --runtime crun busybox:latest true"
    add "podman:run.rm.runc" "podman ${PODMAN_G[*]} run --rm --network none --runtime runc busybox:latest true"
  fi
  [ $crun_ok = 1 ] && add "floor:run.rm" "crun --root $STATE/crun-state run -b $bundle ctrbench-true"
  command -v runc >/dev/null && add "floor:run.rm.runc" "runc --root $STATE/runc-state run -b $bundle ctrbench-true"
  # each command once, unmeasured: one that fails is left out, saying so
  local ok_names=() ok_cmds=() i
  for i in "${!names[@]}"; do
    if timeout 60 ${cmds[$i]} >> "$OUT/logs/run-check.log" 2>&1; then
      ok_names+=("${names[$i]}"); ok_cmds+=("${cmds[$i]}")
    else
      log "run: ${names[$i]} failed, not measured: ${cmds[$i]} ($(tail -1 "$OUT/logs/run-check.log"))"
      "$LOAD" record --tsv "$TSV" --target "${names[$i]%%:*}" --key "${names[$i]#*:}" --value FAIL \
          --detail "${cmds[$i]}: $(tail -1 "$OUT/logs/run-check.log")"
    fi
  done
  local files=()
  hf_rounds run
  hugetlb_fix_off
  local labels=(--label "run.rm=run --rm busybox true: own netns with loopback only (ctrd, dockerd: default network; podman: --network none, crun; floor: bare crun run)"
                --label "run.rm.netnone=run --rm --network none busybox true"
                --label "run.rm.runc=run --rm busybox true with runc (podman --network none --runtime runc; floor: bare runc run)")
  local cmdargs=()
  for i in "${!ok_names[@]}"; do cmdargs+=(--cmd "${ok_names[$i]}=${ok_cmds[$i]}"); done
  [ ${#files[@]} -gt 0 ] && "$LOAD" hyperfine --tsv "$TSV" "${labels[@]}" "${cmdargs[@]}" "${files[@]}"
  resident_stop
  [ $podman_ok = 1 ] && { podman "${PODMAN_G[@]}" rm -af >/dev/null 2>&1; "$LOAD" stop --with-arg "$PBASE" >/dev/null 2>&1; fresh_roots podman; }
  rm -rf "$bundle" "$STATE/crun-state" "$STATE/runc-state"
}

# cli: what the docker CLI itself costs against each daemon, and exec:
# `docker exec C true` into a running container next to the floor,
# `nsenter -a -t PID true` into the same container (issue 13's goals).
sec_cli() {
  resident_stop
  command -v hyperfine >/dev/null || { log "cli: hyperfine missing (bench/deps.sh)"; return 1; }
  command -v nsenter >/dev/null || { log "cli: nsenter missing (util-linux)"; return 1; }
  need_busybox || return 1
  local names=() cmds=() t pid
  add() { names+=("$1"); cmds+=("$2"); }
  for t in "${MEASURED[@]}"; do
    daemon_up "$t" fresh && load_busybox "$t" || { fail "$t" exec.true "docker exec C true"; continue; }
    local d=("$DOCKER" -H "unix://$(sock_of "$t")")
    timeout 60 "${d[@]}" run -d --name ctrbench-exec busybox:latest sleep 100000 >> "$OUT/logs/cli.log" 2>&1 ||
      { log "cli: $t: no container to exec into (logs/cli.log)"; fail "$t" exec.true "docker exec C true"; continue; }
    pid=$(timeout 30 "${d[@]}" inspect -f '{{.State.Pid}}' ctrbench-exec)
    add "$t:cli.version" "${d[*]} version"
    add "$t:cli.run.rm" "${d[*]} run --rm busybox:latest true"
    add "$t:exec.true" "${d[*]} exec ctrbench-exec true"
    if [ "$t" = ctrd ]; then
      add "ctrd:exec.ctrctl" "$CTRCTL -H unix://$(sock_of ctrd) exec ctrbench-exec true"
      [ -n "$pid" ] && [ "$pid" != 0 ] && add "floor:exec.true" "nsenter -a -t $pid true"
    fi
  done
  local ok_names=() ok_cmds=() i
  for i in "${!names[@]}"; do
    if timeout 60 ${cmds[$i]} >> "$OUT/logs/cli.log" 2>&1; then
      ok_names+=("${names[$i]}"); ok_cmds+=("${cmds[$i]}")
    else
      log "cli: ${names[$i]} failed, not measured: ${cmds[$i]} ($(tail -1 "$OUT/logs/cli.log"))"
      "$LOAD" record --tsv "$TSV" --target "${names[$i]%%:*}" --key "${names[$i]#*:}" --value FAIL --detail "${cmds[$i]}"
    fi
  done
  local files=()
  hf_rounds cli
  local labels=(--label "cli.version=docker version (the docker CLI's own start and one round trip)"
                --label "cli.run.rm=docker run --rm busybox true with the docker CLI (default network)"
                --label "exec.true=docker exec C true into a running busybox (floor: nsenter -a -t PID true)"
                --label "exec.ctrctl=ctrctl exec C true")
  local cmdargs=()
  for i in "${!ok_names[@]}"; do cmdargs+=(--cmd "${ok_names[$i]}=${ok_cmds[$i]}"); done
  [ ${#files[@]} -gt 0 ] && "$LOAD" hyperfine --tsv "$TSV" "${labels[@]}" "${cmdargs[@]}" "${files[@]}"
  resident_stop
}

sec_lifecycle() {
  resident_stop
  need_busybox || return 1
  local t daemons=()
  for t in "${MEASURED[@]}"; do
    daemon_up "$t" fresh && load_busybox "$t" && daemons+=(--daemon "$t=$(sock_of "$t")") ||
      fail "$t" lifecycle.sum "$N_LIFE× create, start, wait, rm over the API"
  done
  if ! has_podman; then
    log "lifecycle: podman left out (PODMAN=$PODMAN; podman and conmon installed?)"
  else
    fresh_roots podman
    podman_setup && load_busybox podman && daemon_up podman && daemons+=(--daemon "podman=$(sock_of podman)=none") ||
      fail podman lifecycle.sum "$N_LIFE× create, start, wait, rm over the API"
  fi
  [ ${#daemons[@]} -gt 0 ] || return 1
  log "== lifecycle: $N_LIFE cycles each, ${daemons[*]} taking turns cycle by cycle, with events"
  "$LOAD" lifecycle --tsv "$TSV" --key lifecycle --events-key events -n "$N_LIFE" --image busybox:latest \
      --events "${daemons[@]}" || log "lifecycle failed"
  resident_stop
  if has_podman; then "$LOAD" stop --with-arg "$PBASE" >/dev/null 2>&1; fresh_roots podman; fi
}

sec_dbus() {
  command -v dbus-daemon >/dev/null || { log "dbus: dbus-daemon missing (bench/deps.sh)"; fail ctrd dbus.version.p50 "Version over D-Bus"; return 1; }
  log "== dbus: go test -run XXX -bench BenchmarkVersion -benchtime ${DBUS_N}x -count $DBUS_COUNT ./dbus (in $SRC)"
  (cd "$SRC" && timeout 600 "$GO" test -run XXX -bench BenchmarkVersion -benchtime "${DBUS_N}x" -count "$DBUS_COUNT" ./dbus) \
      > "$OUT/logs/dbus-bench.txt" 2>&1 || { log "dbus: the benchmark failed (logs/dbus-bench.txt)"; fail ctrd dbus.version.p50 "Version over D-Bus"; return 1; }
  "$LOAD" gobench --tsv "$TSV" --target ctrd --file "$OUT/logs/dbus-bench.txt" \
      --sub "BenchmarkVersion/dbus=dbus.version=Version over D-Bus (godbus client in process, private dbus-daemon)" \
      --sub "BenchmarkVersion/http=dbus.http=Version over HTTP on a unix socket (same benchmark)" \
      --sub "BenchmarkVersion/dbus-ping=dbus.ping=D-Bus floor: Peer.Ping round trip, no job"
}

# pull (not in the default list: `bench/run.sh pull`, or `make bench-pull`
# alone): bench/pull.sh with the binaries measured here; its medians are
# recorded under pull.fresh and pull.one_missing.
sec_pull() {
  resident_stop
  local dir=$OUT/pull key t med runs
  log "== pull: bench/pull.sh (ctrd, dockerd, podman, floor; logs in pull/)"
  OUT=$dir CTRD=$CTRD CTRCTL=$CTRCTL NO_PODMAN=$((PODMAN == 1 ? 0 : 1)) timeout 3600 "$REPO/bench/pull.sh" \
      > "$OUT/logs/pull.txt" 2>&1 || { log "pull: bench/pull.sh failed (logs/pull.txt)"; fail_all pull.fresh "pull of a generated image"; return 1; }
  while IFS=$'\t' read -r key t med runs; do
    # shellcheck disable=SC2086
    "$LOAD" median --tsv "$TSV" --target "$t" --key "$key" --unit s \
        --label "pull of a generated image from a loopback registry (${key#pull.}; bench/pull.sh)" --detail "see pull/pull.md" $runs
  done < "$dir/pull.tsv"
}

# goals: issue 2 (ctrd's figure / dockerd's), 3, 4 and 5
for k in start.cold.ready start.warm.ready start.cold.ping start.warm.ping; do
  "$LOAD" goal --goals "$GOALS" --key "$k" --op '<' --bound 0.1 --source "issue 2"
done
"$LOAD" goal --goals "$GOALS" --key rss.idle.total --op '<' --bound 0.3333 --source "issue 2"
"$LOAD" goal --goals "$GOALS" --key "api.version.c$C.rps" --op '>' --bound 1 --source "issue 2"
"$LOAD" goal --goals "$GOALS" --key load.archive --target ctrd --against-target floor --op '<' --bound 1.2 --source "issue 3"
"$LOAD" goal --goals "$GOALS" --key load.archive --op '<' --bound 1 --source "issue 3"
"$LOAD" goal --goals "$GOALS" --key run.rm --target ctrd --against-target floor --op '<' --bound 1.5 --source "issue 4"
"$LOAD" goal --goals "$GOALS" --key run.rm --op '<' --bound 0.3333 --source "issue 4"
"$LOAD" goal --goals "$GOALS" --key lifecycle.sum --op '<' --bound 0.3333 --source "issue 4"
"$LOAD" goal --goals "$GOALS" --key pull.fresh --op '<' --bound 1 --source "issue 9"
"$LOAD" goal --goals "$GOALS" --key pull.fresh --target ctrd --against-target floor --op '<' --bound 1.3 --source "issue 9"
"$LOAD" goal --goals "$GOALS" --key pull.fresh --target ctrd --against-target podman --op '<' --bound 1 --source "issue 9"
"$LOAD" goal --goals "$GOALS" --key dbus.version.p50 --target ctrd --against dbus.http.p50 --against-target ctrd \
    --op '<' --bound 2 --source "issue 5"

"$LOAD" goal --goals "$GOALS" --key exec.true --target ctrd --against-target floor --op '<' --bound 1.5 --source "issue 13"

for s in "${SECTIONS[@]}"; do
  section_load "$s"
  "sec_$s" || log "section $s failed"
done
resident_stop

# --------------------------------------------------------------------- table
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/env.txt"
BUSY_AFTER=$(cpu_busy)
echo "busy after: ${BUSY_AFTER}%" >> "$OUT/env.txt"
{
  echo "ctr benchmark, $(date -u +%FT%TZ), commit $COMMIT ($SOURCE), sections: ${SECTIONS[*]}"
  echo "($(nproc) CPUs, kernel $(uname -r); load average $(grep -m1 '^load before' "$OUT/env.txt" | cut -d' ' -f3-5) before,"
  echo " $(cut -d' ' -f1-3 /proc/loadavg) after; other work kept the CPUs ${BUSY}% busy just before the run and ${BUSY_AFTER}% just after;"
  echo " dockerd $(dpkg-query -W -f '${Version}' docker.io 2>/dev/null), podman $(dpkg-query -W -f '${Version}' podman 2>/dev/null),"
  echo " crun $(dpkg-query -W -f '${Version}' crun 2>/dev/null), runc $(dpkg-query -W -f '${Version}' runc 2>/dev/null);"
  echo " medians: $RUNS starts, $LOAD_RUNS loads, $RUN_RUNS runs, $N_LIFE cycles, $DBUS_COUNT benchmark runs; raw runs in results.tsv)"
  echo
  "$LOAD" table --tsv "$TSV" --goals "$GOALS" --targets "$(IFS=,; echo "${TARGETS[*]}"),podman,floor" --base dockerd
} > "$OUT/table.md"
cat "$OUT/table.md"
