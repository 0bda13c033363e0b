#!/bin/bash
# bench/cp.sh -- `docker cp` of a 200 MB tree (100 files of 1.5 MiB, 2000
# of 25 KiB, 50 folders) into and out of a running busybox container:
# ctrd (bin/ctrd, build it first) and dockerd (Debian's) on private roots
# and sockets under $B, network off, taking turns round by round (order
# alternating), ROUNDS rounds; prints the medians and every figure, and
# checks that what ctrd copied out is what went in. Run as root.
set -u
W=$(cd "$(dirname "$0")/.." && pwd)
B=${B:-/tmp/ctr-bench-cp}
mkdir -p "$B"
ROUNDS=${ROUNDS:-5}
cd $B
rm -rf ctr dock tree out; mkdir -p ctr dock out
echo '{}' > ctr/daemon.json; echo '{}' > dock/daemon.json
# The tree: 100 files of 1.5 MiB, 2000 of 25 KiB, in 50 folders (about 200 MB).
mkdir tree
for d in $(seq 1 50); do mkdir -p tree/d$d; done
for i in $(seq 1 100); do head -c 1572864 /dev/urandom > tree/d$((i % 50 + 1))/big$i; done
for i in $(seq 1 2000); do head -c 25600 /dev/urandom > tree/d$((i % 50 + 1))/small$i; done
du -sh tree
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
  D $s run -d --name cpb --network none busybox sleep 100000 >/dev/null
done
ms() { local t0=$EPOCHREALTIME; "$@" >/dev/null; local t1=$EPOCHREALTIME; echo "$(( (${t1/./} - ${t0/./}) / 1000 ))"; }
declare -A IN OUT
for r in $(seq 1 $ROUNDS); do
  order="ctr dock"; [ $((r % 2)) = 0 ] && order="dock ctr"
  for s in $order; do
    D $s exec cpb rm -rf /tmp/tree; rm -rf $B/out/$s; sync
    IN[$s]+="$(ms D $s cp $B/tree cpb:/tmp/tree) "
    sync
    OUT[$s]+="$(ms D $s cp cpb:/tmp/tree $B/out/$s) "
  done
done
cmp <(cd $B/tree && find . -type f -exec sha256sum {} + | sort) <(cd $B/out/ctr && find . -type f -exec sha256sum {} + | sort) && echo "ctrd copy out matches"
med() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for s in ctr dock; do
  echo "$s in:  $(echo ${IN[$s]} | med) ms  [${IN[$s]}]"
  echo "$s out: $(echo ${OUT[$s]} | med) ms  [${OUT[$s]}]"
done
for s in ctr dock; do D $s rm -f cpb >/dev/null; done
kill $CPID $DPID; wait $CPID $DPID 2>/dev/null
sleep 1
awk -v p="$B/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
