#!/bin/bash
# bench/build.sh -- the classic builder with the docker CLI 28 against
# bin/ctrd (build it first: make build) on a private root and socket under
# $B: a 12-step Dockerfile on busybox with a 100 MB context (100 files of
# 1 MiB, random). It times, ROUNDS times each, and prints the medians:
#   cached    a rebuild with every step cached (the goal: under 100 ms plus
#             the upload);
#   changed   a rebuild after one file changed (COPY and what follows);
#   scratch   the same context sent to a Dockerfile of FROM scratch alone:
#             the upload and the daemon's reading of the context;
#   tar       the client's side alone: tar of the context into a pipe
#             (tar -c | cat > /dev/null), the floor of any upload.
# Run as root.
set -u
W=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-/tmp/ctrt-build-bench}
ROUNDS=${ROUNDS:-7}
mkdir -p "$B"
cd "$B"
rm -rf ctr ctx; mkdir -p ctr ctx
echo '{}' > ctr/daemon.json
for i in $(seq -w 0 99); do head -c 1048576 /dev/urandom > ctx/f0$i; done
printf 'FROM busybox\nENV A=1\nARG B=2\nWORKDIR /app\nCOPY . /app/\nRUN echo one > /one\nLABEL x=y\nRUN echo two > /two\nEXPOSE 80\nUSER 0\nCMD ["sh"]\nENV C=3\n' > ctx/Dockerfile
printf 'FROM scratch\n' > ctx/Dockerfile.scratch
du -sh ctx
sh "$W/scripts/busybox-image.sh" "$B/busybox.tar" >/dev/null
"$W/bin/ctrd" --root "$B/ctr/root" --exec-root "$B/ctr/exec" -H "unix://$B/ctr/sock" --pidfile "$B/ctr/pid" \
  --config-file "$B/ctr/daemon.json" --dbus=none --log-level warn --bridge=none --iptables=false \
  --ip-forward=false --ip-masq=false > "$B/ctr/log" 2>&1 &
CPID=$!
for i in $(seq 1 300); do [ -S "$B/ctr/sock" ] && docker -H "unix://$B/ctr/sock" version >/dev/null 2>&1 && break; sleep 0.1; done
export DOCKER_BUILDKIT=0 DOCKER_CONFIG=$B/dockercfg
D() { /usr/local/bin/docker -H "unix://$B/ctr/sock" "$@"; }
D load -q -i "$B/busybox.tar" >/dev/null
ms() { local t0=$EPOCHREALTIME; "$@" >/dev/null; local t1=$EPOCHREALTIME; echo "$(( (${t1/./} - ${t0/./}) / 1000 ))"; }
cd ctx
D build -q -t bench . >/dev/null || { echo "the first build failed"; cat "$B/ctr/log"; kill $CPID; exit 1; }
CACHED= CHANGED= SCRATCH= TAR=
for r in $(seq 1 "$ROUNDS"); do
  CACHED+="$(ms D build -q -t bench .) "
  head -c 1048576 /dev/urandom > f0050
  CHANGED+="$(ms D build -q -t bench .) "
  SCRATCH+="$(ms D build -q -f Dockerfile.scratch .) "
  TAR+="$(ms sh -c 'tar -cf - . | cat > /dev/null') "
done
med() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "cached:  $(echo $CACHED | med) ms  [$CACHED]"
echo "changed: $(echo $CHANGED | med) ms  [$CHANGED]"
echo "scratch: $(echo $SCRATCH | med) ms  [$SCRATCH]"
echo "tar:     $(echo $TAR | med) ms  [$TAR]"
kill $CPID; wait $CPID 2>/dev/null
sleep 1
awk -v p="$B/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
rm -rf "$B"
