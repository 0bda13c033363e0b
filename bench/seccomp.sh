#!/bin/bash
# bench/seccomp.sh -- what the seccomp filter costs (issue 12): a start,
# `docker run --rm --network none busybox true`, and a system call,
# 1 million getpid(2) in a loop inside the container (bench/seccomp/getpid.c,
# built static and imported as the image ctrbench-seccomp:latest with
# busybox's files), and 1 million personality(0xffffffff), which docker's
# profile allows only for some arguments, so that the kernel runs the whole
# filter on each (getpid it lets by through its cache of calls a filter
# allows whatever their arguments), each with docker's default profile and with
# --security-opt seccomp=unconfined, on ctrd (bin/ctrd, build it first)
# and dockerd (Debian's, with runc) on private roots and sockets under $B,
# network off, and on bare runc (an OCI bundle of the same files, with
# linux.seccomp set to the same default profile, and without).
#
# Starts: hyperfine -N, ROUNDS rounds of RUNS runs of each command (one
# warm-up each), the order reversed every other round, medians over all
# rounds. The loops: LOOP_RUNS runs of each, taking turns (order
# alternating); getpid prints its own time per call (CLOCK_MONOTONIC
# around the loop, so the container's start does not count); medians.
# Before measuring it waits (up to QUIET_MAX seconds) for the 1-minute
# load average to fall under MAX_LOAD, and it prints the load average
# before, between and after. Prints a markdown table; keeps every figure in
# $OUT/results.tsv (ctrload's format) and hyperfine's JSON. Run as root.
#
# Goals (issue 12): the filter adds under 0.5 ms to a start, and costs no
# more per system call than runc's (libseccomp's) filter of the same
# profile.
set -u
W=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-/tmp/ctr-bench-seccomp}
OUT=${OUT:-$B/out}
RUNS=${RUNS:-20}
ROUNDS=${ROUNDS:-4}
LOOP_RUNS=${LOOP_RUNS:-9}
N_CALLS=${N_CALLS:-1000000}
MAX_LOAD=${MAX_LOAD:-1.0}
QUIET_MAX=${QUIET_MAX:-300}
DOCKER=${DOCKER:-/usr/local/bin/docker}

[ "$(id -u)" = 0 ] || { echo "bench/seccomp.sh: run as root" >&2; exit 1; }
[ "${NO_DEPS:-0}" = 1 ] || "$W/bench/deps.sh" || exit 1
[ -x "$W/bin/ctrd" ] || { echo "bench/seccomp.sh: build bin/ctrd first (make build)" >&2; exit 1; }
for c in dockerd runc hyperfine gcc "$DOCKER"; do
  command -v "$c" >/dev/null || { echo "bench/seccomp.sh: $c is missing (bench/deps.sh)" >&2; exit 1; }
done

log() { echo "seccomp: $*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# What dockerd writes outside its roots, removed at the end only when it
# was not there before.
OUTSIDE=(/etc/docker/key.json /run/docker /run/containerd)
declare -A HAD
for p in "${OUTSIDE[@]}"; do [ -e "$p" ] && HAD[$p]=1; done
CG=ctrbench-seccomp
PIDS=()
cleanup() {
  set +e
  for s in ctr dock; do
    [ -S "$B/$s/sock" ] || continue
    ids=$("$DOCKER" -H "unix://$B/$s/sock" ps -aq 2>/dev/null)
    [ -n "$ids" ] && "$DOCKER" -H "unix://$B/$s/sock" rm -f $ids >/dev/null 2>&1
  done
  runc --root "$B/runc-state" delete -f $CG >/dev/null 2>&1
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  # ctrd's monitors outlive ctrd by design: stop those that serve $B.
  for d in /proc/[0-9]*; do
    grep -qsF "$B/" "$d/cmdline" && kill "${d#/proc/}" 2>/dev/null
  done
  sleep 1
  awk -v p="$B/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  find /sys/fs/cgroup -depth -type d -name "$CG*" -exec rmdir {} + 2>/dev/null
  for p in "${OUTSIDE[@]}"; do [ -z "${HAD[$p]:-}" ] && rm -rf "$p"; done
  rm -rf "$B/ctr" "$B/dock" "$B/rootfs" "$B/bundle-"* "$B/runc-state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$B/ctr" "$B/dock" "$B/rootfs" "$B/bundle-"* "$B/runc-state" "$OUT"
mkdir -p "$B/ctr" "$B/dock" "$B/rootfs" "$OUT/logs"
TSV=$OUT/results.tsv
LOAD=$B/ctrload
(cd "$W" && go build -o "$LOAD" ./bench/cmd/ctrload) || exit 1

# The test binary and image: busybox's files and /getpid.
gcc -O2 -static -o "$B/getpid" "$W/bench/seccomp/getpid.c" ||
  { log "gcc -static failed (libc6-dev installed?)"; exit 1; }
sh "$W/scripts/busybox-image.sh" "$B/busybox.tar" >/dev/null || exit 1
tar -xOf "$B/busybox.tar" --wildcards '*/layer.tar' | tar -x -C "$B/rootfs" || exit 1
cp "$B/getpid" "$B/rootfs/getpid"
tar -C "$B/rootfs" --numeric-owner -cf "$B/seccomp-image.tar" . || exit 1

# The bare runtime: two bundles of the same files (runc wants a real
# folder as rootfs, not a symbolic link), with and without
# docker's default profile (for runc spec's capabilities).
for b in default unconfined; do
  mkdir -p "$B/bundle-$b"; cp -a "$B/rootfs" "$B/bundle-$b/rootfs"
  runc spec -b "$B/bundle-$b" || exit 1
done
"$LOAD" ocispec --file "$B/bundle-default/config.json" --args true --readonly --cgroups-path /$CG --seccomp-default &&
  "$LOAD" ocispec --file "$B/bundle-unconfined/config.json" --args true --readonly --cgroups-path /$CG || exit 1
cp "$B/bundle-default/config.json" "$OUT/oci-config-default.json"

echo '{}' > "$B/ctr/daemon.json"; echo '{}' > "$B/dock/daemon.json"
"$W/bin/ctrd" --root "$B/ctr/root" --exec-root "$B/ctr/exec" -H "unix://$B/ctr/sock" --pidfile "$B/ctr/pid" \
  --config-file "$B/ctr/daemon.json" --dbus=none --log-level warn --bridge=none --iptables=false \
  --ip-forward=false --ip-masq=false > "$OUT/logs/ctrd.log" 2>&1 &
PIDS+=($!)
dockerd --data-root "$B/dock/root" --exec-root "$B/dock/exec" -H "unix://$B/dock/sock" --pidfile "$B/dock/pid" \
  --config-file "$B/dock/daemon.json" --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
  --ip-masq=false --storage-driver=overlay2 > "$OUT/logs/dockerd.log" 2>&1 &
PIDS+=($!)
D() { local s=$1; shift; "$DOCKER" -H "unix://$B/$s/sock" "$@"; }
for s in ctr dock; do
  for i in $(seq 1 300); do D $s version >/dev/null 2>&1 && break; sleep 0.1; done
  D $s version >/dev/null 2>&1 || { log "$s did not come up (see $OUT/logs)"; exit 1; }
  D $s load -q -i "$B/busybox.tar" >/dev/null &&
    D $s import "$B/seccomp-image.tar" ctrbench-seccomp:latest >/dev/null || { log "$s: loading the images failed"; exit 1; }
  log "$s: $(D $s info --format '{{.SecurityOptions}}')"
done

# The commands, by TARGET:KEY (ctrload's naming). start.*: true;
# loop.*: getpid N_CALLS.
RUN="run --rm --network none"
UNC="--security-opt seccomp=unconfined"
declare -A CMD
CMD[ctrd:start.default]="$DOCKER -H unix://$B/ctr/sock $RUN busybox:latest true"
CMD[ctrd:start.unconfined]="$DOCKER -H unix://$B/ctr/sock $RUN $UNC busybox:latest true"
CMD[dockerd:start.default]="$DOCKER -H unix://$B/dock/sock $RUN busybox:latest true"
CMD[dockerd:start.unconfined]="$DOCKER -H unix://$B/dock/sock $RUN $UNC busybox:latest true"
CMD[runc:start.default]="runc --root $B/runc-state run -b $B/bundle-default $CG"
CMD[runc:start.unconfined]="runc --root $B/runc-state run -b $B/bundle-unconfined $CG"
NAMES=(ctrd:start.default ctrd:start.unconfined dockerd:start.default dockerd:start.unconfined
  runc:start.default runc:start.unconfined)
loopcmd() { # TARGET MODE CALL
  local call=$N_CALLS; [ "$3" = getpid ] || call="$N_CALLS $3"
  case $1 in
  ctrd) echo "$DOCKER -H unix://$B/ctr/sock $RUN $([ "$2" = unconfined ] && echo "$UNC") ctrbench-seccomp:latest /getpid $call" ;;
  dockerd) echo "$DOCKER -H unix://$B/dock/sock $RUN $([ "$2" = unconfined ] && echo "$UNC") ctrbench-seccomp:latest /getpid $call" ;;
  runc) echo "runc --root $B/runc-state run -b $B/bundle-$2 $CG" ;;
  esac
}
# runc's bundles run getpid for the loop: their config's args are swapped.
runc_args() { # ARGS...
  local b
  for b in default unconfined; do
    "$LOAD" ocispec --file "$B/bundle-$b/config.json" --args "$(IFS=,; echo "$*")" --readonly --cgroups-path /$CG \
      $([ $b = default ] && echo --seccomp-default) || exit 1
  done
}

# Each command once, unmeasured; a failure stops the benchmark.
for n in "${NAMES[@]}"; do
  ${CMD[$n]} >> "$OUT/logs/check.log" 2>&1 || { log "$n failed: ${CMD[$n]} ($(tail -1 "$OUT/logs/check.log"))"; exit 1; }
done
# The filter is there: keyctl is refused with it (getpid's image has
# busybox, whose keyctl-free sh cannot tell; /proc/self/status can).
for s in ctr dock; do
  f=$(D $s $RUN busybox:latest grep Seccomp: /proc/self/status | head -1)
  u=$(D $s $RUN $UNC busybox:latest grep Seccomp: /proc/self/status | head -1)
  log "$s: default: $f; unconfined: $u"
  case "$f/$u" in *2*/*0*) ;; *) log "$s: the filter is not where it should be"; exit 1 ;; esac
done

# Wait for quiet.
t0=$SECONDS
while awk -v m="$MAX_LOAD" '{exit !($1 >= m)}' /proc/loadavg && [ $((SECONDS - t0)) -lt "$QUIET_MAX" ]; do sleep 5; done
L_BEFORE=$(loadavg)
log "load average before: $L_BEFORE (waited $((SECONDS - t0)) s for < $MAX_LOAD)"

files=()
for ((r = 0; r < ROUNDS; r++)); do
  args=()
  for ((j = 0; j < ${#NAMES[@]}; j++)); do
    i=$j; ((r % 2)) && i=$((${#NAMES[@]} - 1 - j))
    args+=(-n "${NAMES[$i]}" "${CMD[${NAMES[$i]}]}")
  done
  hyperfine -N --style basic --warmup 1 --runs "$RUNS" --export-json "$OUT/logs/hf-start-$r.json" "${args[@]}" \
    > "$OUT/logs/hf-start-$r.txt" 2>&1 && files+=("$OUT/logs/hf-start-$r.json") || log "hyperfine round $r failed"
done
cmdargs=()
for n in "${NAMES[@]}"; do cmdargs+=(--cmd "$n=${CMD[$n]}"); done
"$LOAD" hyperfine --tsv "$TSV" --label "start.default=run --rm --network none busybox true, default profile" \
  --label "start.unconfined=the same, seccomp=unconfined" "${cmdargs[@]}" "${files[@]}" > /dev/null
L_MID=$(loadavg)
log "load average after the starts: $L_MID"

declare -A NS
LOOPS=(ctrd:default ctrd:unconfined dockerd:default dockerd:unconfined runc:default runc:unconfined)
CALLS=(getpid personality)
for c in "${CALLS[@]}"; do
  if [ $c = getpid ]; then runc_args /getpid "$N_CALLS"; else runc_args /getpid "$N_CALLS" $c; fi
  for ((r = 0; r < LOOP_RUNS; r++)); do
    for ((j = 0; j < ${#LOOPS[@]}; j++)); do
      i=$j; ((r % 2)) && i=$((${#LOOPS[@]} - 1 - j))
      n=${LOOPS[$i]}
      out=$($(loopcmd "${n%%:*}" "${n#*:}" $c) 2>&1)
      v=${out%% ns/*}
      case $v in '' | *[!0-9.]*) log "$n $c: $out"; exit 1 ;; esac
      NS[$c:$n]+="$v "
    done
  done
  for n in "${LOOPS[@]}"; do
    "$LOAD" median --tsv "$TSV" --target "${n%%:*}" --key "$c.${n#*:}" --unit ns \
      --label "$c in a loop of $N_CALLS, per call" --detail "$(loopcmd "${n%%:*}" "${n#*:}" $c)" ${NS[$c:$n]} > /dev/null
  done
  log "load average after the $c loop: $(loadavg)"
done
L_AFTER=$(loadavg)

# The table: medians, the filter's share, the goals.
val() { awk -F'\t' -v k="$1" -v t="$2" '$1 == k && $2 == t {v = $3} END {print v}' "$TSV"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "") print "?"; else printf "%.2f", a - b}'; }
{
  echo "| figure | ctrd | dockerd (runc) | runc |"
  echo "|---|---|---|---|"
  for k in start.default start.unconfined; do
    echo "| \`$k\` (ms, median of $((ROUNDS * RUNS))) | $(val $k ctrd) | $(val $k dockerd) | $(val $k runc) |"
  done
  echo "| start: added by the filter (ms) | $(sub "$(val start.default ctrd)" "$(val start.unconfined ctrd)") | $(sub "$(val start.default dockerd)" "$(val start.unconfined dockerd)") | $(sub "$(val start.default runc)" "$(val start.unconfined runc)") |"
  for c in "${CALLS[@]}"; do
    for k in $c.default $c.unconfined; do
      echo "| \`$k\` (ns/call, median of $LOOP_RUNS) | $(val $k ctrd) | $(val $k dockerd) | $(val $k runc) |"
    done
    echo "| $c: added by the filter (ns/call) | $(sub "$(val $c.default ctrd)" "$(val $c.unconfined ctrd)") | $(sub "$(val $c.default dockerd)" "$(val $c.unconfined dockerd)") | $(sub "$(val $c.default runc)" "$(val $c.unconfined runc)") |"
  done
  echo
  echo "Goals (issue 12): start added < 0.5 ms; a system call's added cost no more than runc's."
  echo "Load average: before $L_BEFORE; after the starts $L_MID; after the loops $L_AFTER."
  echo "Every figure: $TSV; hyperfine's JSON: $OUT/logs. The loop's runs (ns/call):"
} | tee "$OUT/table.md"
for c in "${CALLS[@]}"; do for n in "${LOOPS[@]}"; do echo "$c $n: ${NS[$c:$n]}"; done; done | tee -a "$OUT/table.md"
