#!/bin/bash
# bench/run.sh -- ctr's benchmark harness: ctrd next to dockerd, in one run,
# on this machine. `make bench` runs it.
#
#   bench/run.sh [SECTION...]          (default: start rss api activation)
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
# In start and activation the daemons take turns (one start each per round,
# order alternating), so that other work on the shared machine weighs on all
# of them alike.
#
# Every figure goes to $OUT/results.tsv (key, target, value, unit, label,
# detail) and the side-by-side table to $OUT/table.md and stdout. $OUT
# defaults to /tmp/ctr-bench/<UTC stamp>; logs are in $OUT/logs.
#
# Knobs (environment):
#   OUT         output folder
#   TARGETS     daemons, in column order (default "ctrd dockerd")
#   CTRD        ctrd binary to measure (default: `make build` in this tree,
#               copied to $OUT/bin/ctrd; if that fails, ctrd is not
#               measured, loudly)
#   RUNS=5      measured starts per start/activation figure
#   IDLE=5      seconds between start and the RSS reading
#   N_SEQ=2000  requests at c=1;  N_CONC=4000 requests at C;  C=16
#   N_PING=20000 requests for /_ping at C
#   MAX_LOAD=30 seconds cap on each load run
#   QUIET_WAIT=0 wait up to this many seconds for the CPUs to be less than
#               QUIET_MAX=25 percent busy before starting (the machine is shared)
#
# dockerd (Debian's docker.io) runs as the anchors run it (see
# /work/shared/anchors/BASELINES.md): private --data-root, --exec-root, -H,
# --pidfile, --bridge=none, no iptables, no forwarding, no masquerading,
# overlay2. ctrd gets private --root/--exec-root/-H/--pidfile, --dbus=none,
# --log-level warn, and the same network-off flags when it has them. No
# traffic leaves the unix sockets.
#
# Everything the harness starts is recorded as PID:START and stopped with its
# descendants, also on failure or Ctrl-C (trap). At exit it removes its
# scratch folder (roots, sockets), the files dockerd leaves outside its roots
# (/etc/docker/key.json, /run/docker, /run/containerd) and the docker/ and ctr/
# cgroups, each only if it did not exist before the run; it warns about any
# path ctrd created outside its private roots.
#
# Needs: root, Go, docker.io, systemd (systemd-socket-activate). Takes about
# two minutes.
set -uo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/.." && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-/tmp/ctr-bench/$STAMP}
read -r -a TARGETS <<< "${TARGETS:-ctrd dockerd}"   # the table's columns
MEASURED=("${TARGETS[@]}")                           # less those that cannot run
RUNS=${RUNS:-5}
IDLE=${IDLE:-5}
N_SEQ=${N_SEQ:-2000}
N_CONC=${N_CONC:-4000}
N_PING=${N_PING:-20000}
C=${C:-16}
MAX_LOAD=${MAX_LOAD:-30}
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}

SECTIONS=("$@")
[ ${#SECTIONS[@]} -eq 0 ] && SECTIONS=(start rss api activation)

DOCKER_FLAGS=(--bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false
              --storage-driver=overlay2 --insecure-registry 127.0.0.1:5000)
# paths dockerd writes outside its private roots (anchors, note 8)
DOCKER_SIDE=(/etc/docker/key.json /etc/docker /run/docker /run/containerd)
# paths a ctrd given private roots should not touch; reported, never removed
CTRD_SIDE=(/run/ctr /run/ctr.sock /var/lib/ctr)
# top-level cgroups the daemons may create in each hierarchy
CGROUP_NAMES=(docker ctr)

# ------------------------------------------------------------------ preflight
[ "$(id -u)" = 0 ] || { echo "run.sh: run as root" >&2; exit 1; }
for c in "$GO" dockerd systemd-socket-activate; do
  command -v "$c" >/dev/null || { echo "run.sh: missing $c (apt-get install docker.io systemd; Go)" >&2; exit 1; }
done
KNOWN_SECTIONS=" start rss api activation "
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
for p in "${DOCKER_SIDE[@]}" "${CTRD_SIDE[@]}"; do
  [ -e "$p" ] && touch "$STATE/pre/$(echo "$p" | tr / _)"
done
for n in "${CGROUP_NAMES[@]}"; do ls -d /sys/fs/cgroup/*/"$n" 2>/dev/null; done > "$STATE/pre/cgroups"

# ------------------------------------------------------------------- cleanup
umount_under() { # umount everything mounted at or below $1, deepest first
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
}
cleanup() {
  set +e
  [ -n "${RES_PID:-}" ] && log "cleanup: stopping the resident daemon"
  [ -x "$LOAD" ] && "$LOAD" stop --pids "$PIDS" --timeout 20s >> "$OUT/logs/run.log" 2>&1
  wait 2>/dev/null
  umount_under "$STATE"
  local p cg stray=()
  for p in "${DOCKER_SIDE[@]}"; do
    [ -e "$STATE/pre/$(echo "$p" | tr / _)" ] || rm -rf "$p"
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
CTRD_NOTE=""
if [ -n "${CTRD:-}" ]; then
  CTRD_NOTE="given binary $CTRD"
elif make -C "$REPO" -s build > "$OUT/logs/build-ctrd.log" 2>&1 && cp "$REPO/bin/ctrd" "$OUT/bin/ctrd"; then
  # as `make build` makes it (static, version stamped); the copy is what was measured
  CTRD=$OUT/bin/ctrd; CTRD_NOTE="make build in $REPO at $COMMIT"
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
# the network stays off: pass ctrd the same switches when it has them
CTRD_FLAGS=(--dbus=none --log-level warn)
if [ -x "$CTRD" ]; then
  help=$(timeout 10 "$CTRD" --help 2>&1)
  for f in --bridge=none --iptables=false --ip-forward=false --ip-masq=false; do
    grep -q -- "${f%%=*}[ =]" <<< "$help" && CTRD_FLAGS+=("$f")
  done
fi

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
  echo "commit: $COMMIT"
  echo "tree: $(git -C "$REPO" status --porcelain 2>/dev/null | wc -l) paths differ from HEAD (others work in the same tree)"
  echo "ctrd: ${CTRD_NOTE:-not measured} $([ -x "$CTRD" ] && timeout 10 "$CTRD" version 2>&1 | tr '\n' ' ')"
  echo "ctrd flags: ${CTRD_FLAGS[*]}"
  echo "dockerd flags: ${DOCKER_FLAGS[*]}"
  echo "kernel: $(uname -r); cpus: $(nproc); $(free -m | sed -n 2p)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "busy before: ${BUSY}% of CPU time not idle over 3 s, other work"
  dpkg-query -W -f '${Package} ${Version}\n' docker.io containerd runc systemd 2>/dev/null
  "$GO" version
} > "$OUT/env.txt"

# ------------------------------------------------------------------- daemons
sock_of() { echo "$STATE/$1.sock"; }
root_dirs() { echo "$STATE/$1-root" "$STATE/$1-exec"; }
argv_of() { # target host -> ARGV
  local r e; read -r r e <<< "$(root_dirs "$1")"
  case $1 in
    ctrd) ARGV=("$CTRD" -H "$2" --root "$r" --exec-root "$e" --pidfile "$STATE/$1.pid" "${CTRD_FLAGS[@]}") ;;
    dockerd) ARGV=(dockerd -H "$2" --data-root "$r" --exec-root "$e" --pidfile "$STATE/$1.pid" "${DOCKER_FLAGS[@]}") ;;
    *) log "unknown target $1"; return 1 ;;
  esac
}

RES_TARGET=""; RES_PID=""; RES_PROC=""
proc_id() { # PID -> PID:START (start time is field 22 of /proc/PID/stat)
  local pid=$1 s; s=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  s=${s##*) }; set -- $s; echo "$pid:${20}"
}
resident_stop() {
  [ -n "$RES_PID" ] || return 0
  "$LOAD" stop --timeout 30s "$RES_PROC" >> "$OUT/logs/run.log" 2>&1
  wait "$RES_PID" 2>/dev/null
  RES_TARGET=""; RES_PID=""; RES_PROC=""
}
resident_start() { # target: a daemon for rss/api, a child of this script
  resident_stop
  local t=$1 sock; sock=$(sock_of "$t")
  argv_of "$t" "unix://$sock" || return 1
  rm -f "$sock"
  echo "=== resident $t" >> "$OUT/logs/$t.log"
  "${ARGV[@]}" >> "$OUT/logs/$t.log" 2>&1 &
  RES_PID=$!
  RES_PROC=$(proc_id "$RES_PID") || RES_PROC=$RES_PID
  echo "$RES_PROC" >> "$PIDS"
  RES_TARGET=$t
  "$LOAD" wait --sock "$sock" --pid "$RES_PROC" --timeout 60s >/dev/null ||
    { log "$t did not come up (logs/$t.log)"; resident_stop; return 1; }
}
fail() { # target key label: record a figure that could not be measured
  "$LOAD" record --tsv "$TSV" --target "$1" --key "$2" --value FAIL --label "$3" --detail "see logs/run.log and logs/$1.log"
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

# issue 2's goals: ctrd's figure / dockerd's figure
for k in start.cold.ready start.warm.ready start.cold.ping start.warm.ping; do
  "$LOAD" goal --goals "$GOALS" --key "$k" --op '<' --bound 0.1 --source "issue 2"
done
"$LOAD" goal --goals "$GOALS" --key rss.idle.total --op '<' --bound 0.3333 --source "issue 2"
"$LOAD" goal --goals "$GOALS" --key "api.version.c$C.rps" --op '>' --bound 1 --source "issue 2"

for s in "${SECTIONS[@]}"; do "sec_$s" || log "section $s failed"; done
resident_stop

# --------------------------------------------------------------------- table
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/env.txt"
BUSY_AFTER=$(cpu_busy)
echo "busy after: ${BUSY_AFTER}%" >> "$OUT/env.txt"
{
  echo "ctr benchmark, $(date -u +%FT%TZ), commit $COMMIT, sections: ${SECTIONS[*]}"
  echo "($(nproc) CPUs, kernel $(uname -r); other work kept the CPUs ${BUSY}% busy just before the run and ${BUSY_AFTER}% just after;"
  echo " dockerd $(dpkg-query -W -f '${Version}' docker.io 2>/dev/null); medians of $RUNS starts; raw runs in results.tsv)"
  echo
  "$LOAD" table --tsv "$TSV" --goals "$GOALS" --targets "$(IFS=,; echo "${TARGETS[*]}")" --base dockerd
} > "$OUT/table.md"
cat "$OUT/table.md"
