#!/bin/bash
# bench/stats.sh -- `docker stats --no-stream` of N (20) running busybox
# containers: ctrd (bin/ctrd, build it first) and dockerd (Debian's) on
# private roots and sockets under $B, network off, taking turns round by
# round (order alternating), ROUNDS rounds; prints the medians and every
# figure. Run as root.
set -u
W=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-/tmp/ctr-bench-stats}
N=${N:-20}
mkdir -p "$B"
ROUNDS=${ROUNDS:-5}
cd $B
rm -rf ctr dock; mkdir -p ctr dock
echo '{}' > ctr/daemon.json; echo '{}' > dock/daemon.json
sh $W/scripts/busybox-image.sh $B/busybox.tar >/dev/null
$W/bin/ctrd --root $B/ctr/root --exec-root $B/ctr/exec -H unix://$B/ctr/sock --pidfile $B/ctr/pid \
  --config-file $B/ctr/daemon.json --dbus=none --log-level warn --bridge=none --iptables=false \
  --ip-forward=false --ip-masq=false > $B/ctr/log 2>&1 &
CPID=$!
dockerd --data-root $B/dock/root --exec-root $B/dock/exec -H unix://$B/dock/sock --pidfile $B/dock/pid \
  --config-file $B/dock/daemon.json --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
  --ip-masq=false --storage-driver=overlay2 > $B/dock/log 2>&1 &
DPID=$!
for s in ctr dock; do for i in $(seq 1 300); do [ -S $B/$s/sock ] && docker -H unix://$B/$s/sock version >/dev/null 2>&1 && break; sleep 0.1; done; done
D() { local s=$1; shift; /usr/local/bin/docker -H unix://$B/$s/sock "$@"; }
for s in ctr dock; do
  D $s load -q -i $B/busybox.tar >/dev/null
  for i in $(seq 1 $N); do D $s run -d --name st$i --network none busybox sleep 100000 >/dev/null; done
done
ms() { local t0=$EPOCHREALTIME; "$@" >/dev/null; local t1=$EPOCHREALTIME; echo "$(( (${t1/./} - ${t0/./}) / 1000 ))"; }
declare -A T
for r in $(seq 1 $ROUNDS); do
  order="ctr dock"; [ $((r % 2)) = 0 ] && order="dock ctr"
  for s in $order; do T[$s]+="$(ms D $s stats --no-stream) "; done
done
D ctr stats --no-stream | head -3
med() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for s in ctr dock; do echo "$s stats --no-stream of $N: $(echo ${T[$s]} | med) ms  [${T[$s]}]"; done
for s in ctr dock; do D $s rm -f $(seq -f "st%g" 1 $N) >/dev/null; done
kill $CPID $DPID; wait $CPID $DPID 2>/dev/null
sleep 1
awk -v p="$B/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
