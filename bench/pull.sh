#!/bin/bash
# bench/pull.sh -- the pull of an image from a registry on loopback: ctrd
# next to dockerd and podman, and the floor, in one run. `make bench-pull`
# runs it; bench/run.sh runs it as its "pull" section.
#
# A generated image A of PULL_LAYERS=4 layers (PULL_MIB=240 MiB of files
# in all, half of it incompressible random data, half text; gzip) and an
# image B that shares A's lower layers and has a top layer of its own are
# pushed with skopeo to Debian's docker-registry on a free loopback port.
# Figures (medians of PULL_ROUNDS=5 rounds, after one unmeasured round):
#   pull.fresh     the pull of A into storage that holds none of it:
#                  `ctrctl pull -q` into ctrd, `/usr/bin/docker pull -q`
#                  into dockerd, `podman pull -q --tls-verify=false`;
#                  before each, the image is removed (rmi, which takes its
#                  layers with it: no layer of A is left) and `sync`
#   pull.one_missing  the pull of B while A is there: one layer to fetch
#   floor          curl of the blobs, all at once, then tar -xzf of each
#                  into a fresh folder on the same file system
# Each round is one hyperfine run (--runs 1, a --prepare per command) of
# every command, the order reversed every other round: they take turns.
# The table goes to stdout and $OUT/pull.md, the figures to $OUT/pull.tsv
# (key, target, median s, every run), raw output to $OUT.
#
# dockerd runs on its own socket and private roots with --bridge=none
# --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false
# --insecure-registry HOST; podman with private --root --runroot --tmpdir;
# ctrd with private roots, --dbus=none and the network off.
#
# Knobs: OUT (default /tmp/ctr-bench/pull-<stamp>), PULL_MIB, PULL_LAYERS,
# PULL_ROUNDS, CTRD, CTRCTL (default bin/ beside the repo), NO_DOCKER=1,
# NO_PODMAN=1. Needs root, hyperfine, docker.io, podman, skopeo,
# docker-registry, curl, python3 (bench/deps.sh and make deps install
# them).
set -uo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "$0")/.." && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-/tmp/ctr-bench/pull-$STAMP}
PULL_MIB=${PULL_MIB:-240}
PULL_LAYERS=${PULL_LAYERS:-4}
PULL_ROUNDS=${PULL_ROUNDS:-5}
CTRD=${CTRD:-$REPO/bin/ctrd}
CTRCTL=${CTRCTL:-$(dirname "$CTRD")/ctrctl}
DOCKER=/usr/bin/docker
NO_DOCKER=${NO_DOCKER:-0}
NO_PODMAN=${NO_PODMAN:-0}
mkdir -p "$OUT"
S=$(mktemp -d /var/tmp/ctrt-bench-pull.XXXXXX)
CSOCK=$S/ctrd.sock DSOCK=$S/dockerd.sock
pids=()

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }
die() { log "pull: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root"
for p in hyperfine skopeo docker-registry curl python3 tar gzip; do command -v $p >/dev/null || die "$p is missing (bench/deps.sh)"; done
[ -x "$CTRD" ] && [ -x "$CTRCTL" ] || die "$CTRD or $CTRCTL is missing (make build)"
if [ "$NO_DOCKER" != 1 ] && ! command -v dockerd >/dev/null; then log "dockerd is missing: left out"; NO_DOCKER=1; fi
if [ "$NO_PODMAN" != 1 ] && ! command -v podman >/dev/null; then log "podman is missing: left out"; NO_PODMAN=1; fi
key_json_before=0; [ -e /etc/docker/key.json ] && key_json_before=1
side_before=()
for p in /run/containers /run/libpod /etc/containers/networks; do [ -e "$p" ] && side_before+=("$p"); done
pre_cgroups=$(ls -d /sys/fs/cgroup/*/docker 2>/dev/null)

cleanup() {
	set +e
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do for _ in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$p" 2>/dev/null; done
	grep " $S/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf "$S"
	[ "$key_json_before" = 0 ] && rm -f /etc/docker/key.json && rmdir /etc/docker 2>/dev/null
	for p in /run/containers /run/libpod /etc/containers/networks; do
		[[ " ${side_before[*]} " == *" $p "* ]] || rm -rf "$p"
	done
	for cg in /sys/fs/cgroup/*/docker; do
		grep -qx "$cg" <<< "$pre_cgroups" || find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------- the registry
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST=127.0.0.1:$PORT
cat > "$S/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $S/registry
http:
  addr: $HOST
  secret: ctr-bench-not-a-secret
EOF
docker-registry serve "$S/registry.yml" > "$OUT/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://$HOST/v2/" >/dev/null && break; sleep 0.05; done
curl -sf "http://$HOST/v2/" >/dev/null || die "docker-registry did not answer on $HOST"

# -------------------------------------------------------------- the images
log "generating image A ($PULL_MIB MiB in $PULL_LAYERS layers) and B (A's lower layers, a top of its own)"
python3 - "$S/gen" "$PULL_MIB" "$PULL_LAYERS" <<'EOF' || die "cannot generate the images"
# Writes two OCI layouts, gen/a and gen/b: A has LAYERS layers of about
# MIB/LAYERS MiB of files each (half random bytes, half text, in files of
# 0.5 KiB to 8 MiB), B has A's lower LAYERS-1 layers and a new top one.
import gzip, hashlib, io, json, os, random, sys, tarfile, time
out, mib, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(42)
words = [w for w in open('/usr/share/dict/words').read().split() if w.isalpha()] if os.path.exists('/usr/share/dict/words') else \
    ['%x' % rng.getrandbits(24) for _ in range(5000)]
blobs = {}
def put(b):
    d = hashlib.sha256(b).hexdigest()
    blobs[d] = b
    return {'digest': 'sha256:' + d, 'size': len(b)}
def layer(i, size):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo('layer%d' % i); d.type = tarfile.DIRTYPE; d.mode = 0o755; d.mtime = 1700000000
        tf.addfile(d)
        left, k = size, 0
        while left > 0:
            s = min(left, rng.choice([512, 4096, 65536, 1 << 20, 4 << 20, 8 << 20]))
            if k % 2 == 0:
                body = rng.randbytes(s)
            else:
                body = (' '.join(rng.choice(words) for _ in range(s // 6 + 1))).encode()[:s]
            ti = tarfile.TarInfo('layer%d/f%05d' % (i, k)); ti.size = len(body); ti.mode = 0o644; ti.mtime = 1700000000
            tf.addfile(ti, io.BytesIO(body))
            left -= s; k += 1
    plain = buf.getvalue()
    return plain, gzip.compress(plain, compresslevel=6, mtime=0)
per = mib * (1 << 20) // n
layers = [layer(i, per) for i in range(n + 1)]
def layout(name, ls):
    cfg = {'architecture': 'amd64', 'os': 'linux', 'created': '2026-01-01T00:00:00Z',
           'config': {'Cmd': ['/bin/true']},
           'rootfs': {'type': 'layers', 'diff_ids': ['sha256:' + hashlib.sha256(p).hexdigest() for p, _ in ls]}}
    blobs.clear()
    c = put(json.dumps(cfg).encode()); c['mediaType'] = 'application/vnd.oci.image.config.v1+json'
    m = {'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'config': c, 'layers': []}
    for _, z in ls:
        l = put(z); l['mediaType'] = 'application/vnd.oci.image.layer.v1.tar+gzip'; m['layers'].append(l)
    md = put(json.dumps(m).encode()); md['mediaType'] = 'application/vnd.oci.image.manifest.v1+json'
    md['annotations'] = {'org.opencontainers.image.ref.name': 'bench'}
    d = os.path.join(out, name); os.makedirs(os.path.join(d, 'blobs', 'sha256'))
    for h, b in blobs.items():
        open(os.path.join(d, 'blobs', 'sha256', h), 'wb').write(b)
    json.dump({'schemaVersion': 2, 'manifests': [md]}, open(os.path.join(d, 'index.json'), 'w'))
    open(os.path.join(d, 'oci-layout'), 'w').write('{"imageLayoutVersion":"1.0.0"}')
    return m
ma = layout('a', layers[:n])
mb = layout('b', layers[:n - 1] + [layers[n]])
json.dump({'a': [l['digest'] for l in ma['layers']], 'b_top': mb['layers'][-1]['digest'],
           'plain': sum(len(p) for p, _ in layers[:n]), 'packed': sum(l['size'] for l in ma['layers'])},
          open(os.path.join(out, 'info.json'), 'w'))
EOF
for img in a b; do
	skopeo copy --quiet --dest-tls-verify=false --insecure-policy "oci:$S/gen/$img:bench" "docker://$HOST/bench/pull-$img:1" \
		>> "$OUT/run.log" 2>&1 || die "skopeo copy of image $img failed"
done
read -r -a BLOBS_A < <(jq -r '.a | join(" ")' "$S/gen/info.json")
BLOB_B=$(jq -r .b_top "$S/gen/info.json")
PLAIN_MB=$(jq -r '.plain / 1000000 | floor' "$S/gen/info.json")
PACKED_MB=$(jq -r '.packed / 1000000 | floor' "$S/gen/info.json")
rm -rf "$S/gen"
REF_A=$HOST/bench/pull-a:1 REF_B=$HOST/bench/pull-b:1

# -------------------------------------------------------------- the floor
cat > "$S/floor.sh" <<'EOF'
#!/bin/bash
# floor.sh REPO BLOB...: curl of the blobs of bench/pull-REPO at once,
# then tar -xzf of each into its own new folder under $S/floor.
set -e
repo=$1; shift
rm -rf "$S/floor"; mkdir -p "$S/floor"
i=0; for b in "$@"; do curl -sSf -o "$S/floor/$i.tgz" "http://$HOST/v2/bench/pull-$repo/blobs/$b" & i=$((i+1)); done
wait
i=0; for b in "$@"; do mkdir "$S/floor/$i"; tar -xzf "$S/floor/$i.tgz" -C "$S/floor/$i"; i=$((i+1)); done
EOF
export S HOST
chmod +x "$S/floor.sh"

# ------------------------------------------------------------ the daemons
echo '{}' > "$S/daemon.json"
wait_up() { for _ in $(seq 300); do timeout 5 "$@" version >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
NAMES=() FRESH=() ONE=() PREP_FRESH=() PREP_ONE=()
add() { NAMES+=("$1"); FRESH+=("$2"); PREP_FRESH+=("$3"); ONE+=("$4"); PREP_ONE+=("$5"); }

mkdir -p "$S/ctrd"
"$CTRD" --root "$S/ctrd/root" --exec-root "$S/ctrd/exec" --config-file "$S/daemon.json" --pidfile "$S/ctrd/pid" \
	-H "unix://$CSOCK" --dbus=none --bridge=none --iptables=false --ip-forward=false --log-level warn \
	> "$OUT/ctrd.log" 2>&1 &
pids+=($!)
C=("$CTRCTL" -H "unix://$CSOCK")
wait_up "${C[@]}" || die "ctrd did not come up (see $OUT/ctrd.log)"
add ctrd "${C[*]} pull -q $REF_A" "${C[*]} rmi -f $REF_A $REF_B >/dev/null 2>&1; sync" \
	"${C[*]} pull -q $REF_B" "${C[*]} rmi -f $REF_B >/dev/null 2>&1; ${C[*]} pull -q $REF_A >/dev/null; sync"

if [ "$NO_DOCKER" != 1 ]; then
	mkdir -p "$S/docker"
	dockerd --data-root "$S/docker/root" --exec-root "$S/docker/exec" --pidfile "$S/docker/pid" -H "unix://$DSOCK" \
		--config-file "$S/daemon.json" --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
		--storage-driver=overlay2 --insecure-registry "$HOST" > "$OUT/dockerd.log" 2>&1 &
	pids+=($!)
	D=("$DOCKER" -H "unix://$DSOCK")
	if wait_up "${D[@]}"; then
		add dockerd "${D[*]} pull -q $REF_A" "${D[*]} rmi -f $REF_A $REF_B >/dev/null 2>&1; sync" \
			"${D[*]} pull -q $REF_B" "${D[*]} rmi -f $REF_B >/dev/null 2>&1; ${D[*]} pull -q $REF_A >/dev/null; sync"
	else
		log "dockerd did not come up (see $OUT/dockerd.log): left out"
	fi
fi

if [ "$NO_PODMAN" != 1 ]; then
	mkdir -p "$S/podman/tmp"
	P="podman --root $S/podman/root --runroot $S/podman/run --tmpdir $S/podman/tmp --storage-driver overlay --cgroup-manager cgroupfs --events-backend file"
	add podman "$P pull -q --tls-verify=false $REF_A" "$P rmi -af >/dev/null 2>&1; sync" \
		"$P pull -q --tls-verify=false $REF_B" "$P rmi -f $REF_B >/dev/null 2>&1; $P pull -q --tls-verify=false $REF_A >/dev/null; sync"
fi
add floor "$S/floor.sh a ${BLOBS_A[*]}" "rm -rf $S/floor; sync" "$S/floor.sh b $BLOB_B" "rm -rf $S/floor; sync"

# ---------------------------------------------------------------- measure
# One unmeasured round: each command once; one that fails is left out.
ok=()
for i in "${!NAMES[@]}"; do
	if bash -c "${PREP_FRESH[$i]}" && timeout 600 bash -c "${FRESH[$i]}" >> "$OUT/check.log" 2>&1 &&
		bash -c "${PREP_ONE[$i]}" >> "$OUT/check.log" 2>&1 && timeout 600 bash -c "${ONE[$i]}" >> "$OUT/check.log" 2>&1; then
		ok+=("$i")
	else
		log "${NAMES[$i]} failed, left out: $(tail -1 "$OUT/check.log")"
	fi
done
[ ${#ok[@]} -gt 0 ] || die "every command failed"
# Fresh means fresh: after the prepare step no image (so no layer) is left.
for i in "${ok[@]}"; do
	case ${NAMES[$i]} in
	ctrd) lister="${C[*]} images -q" ;;
	dockerd) lister="${D[*]} images -q" ;;
	podman) lister="$P images -q" ;;
	*) continue ;;
	esac
	bash -c "${PREP_FRESH[$i]}"
	left=$(bash -c "$lister" 2>&1)
	[ -z "$left" ] || die "${NAMES[$i]}: images left after the fresh prepare step: $left"
done
log "image A: $PLAIN_MB MB of files in $PULL_LAYERS layers, $PACKED_MB MB packed; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT/env.txt"
for kind in fresh one_missing; do
	for ((round = 0; round < PULL_ROUNDS; round++)); do
		args=()
		for ((j = 0; j < ${#ok[@]}; j++)); do
			k=$j; ((round % 2)) && k=$((${#ok[@]} - 1 - j))
			i=${ok[$k]}
			if [ $kind = fresh ]; then args+=(-n "${NAMES[$i]}" --prepare "${PREP_FRESH[$i]}" "${FRESH[$i]}")
			else args+=(-n "${NAMES[$i]}" --prepare "${PREP_ONE[$i]}" "${ONE[$i]}"); fi
		done
		log "== $kind, round $((round + 1)) of $PULL_ROUNDS"
		timeout 1800 hyperfine --style basic --runs 1 --export-json "$OUT/hf-$kind-$round.json" "${args[@]}" \
			> "$OUT/hf-$kind-$round.txt" 2>&1 || log "hyperfine failed ($OUT/hf-$kind-$round.txt)"
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/env.txt"

# ------------------------------------------------------------------ table
python3 - "$OUT" "$PULL_ROUNDS" "$PLAIN_MB" "$PACKED_MB" "$PULL_LAYERS" <<'EOF' | tee "$OUT/pull.md"
import json, os, statistics, sys
out, rounds, plain, packed, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
runs = {}
for kind in ('fresh', 'one_missing'):
    for r in range(rounds):
        p = os.path.join(out, 'hf-%s-%d.json' % (kind, r))
        if not os.path.exists(p):
            continue
        for res in json.load(open(p))['results']:
            runs.setdefault((kind, res['command']), []).extend(res['times'])
med = {k: statistics.median(v) for k, v in runs.items() if v}
with open(os.path.join(out, 'pull.tsv'), 'w') as f:
    for (kind, t), v in sorted(runs.items()):
        f.write('pull.%s\t%s\t%.3f\t%s\n' % (kind, t, med[(kind, t)], ' '.join('%.3f' % x for x in v)))
env = open(os.path.join(out, 'env.txt')).read().split('\n')
print('pull of a generated image from docker-registry on loopback: %s MB of files in %s layers (%s MB gzip); medians of %d rounds, taking turns' % (plain, n, packed, rounds))
print('(%d CPUs; %s; %s)' % (os.cpu_count(), env[0], env[1] if len(env) > 1 else ''))
print()
targets = [t for t in ('ctrd', 'dockerd', 'podman', 'floor') if ('fresh', t) in med]
print('| pull | ' + ' | '.join(targets) + ' | ctrd/dockerd | ctrd/podman | ctrd/floor | goal |')
print('|---|' + '---|' * (len(targets) + 4))
for kind, label in (('fresh', 'image A into fresh storage'), ('one_missing', 'image B, all but its top layer present')):
    row = ['%.2f s' % med[(kind, t)] if (kind, t) in med else '-' for t in targets]
    def ratio(a, b):
        return '%.2f×' % (med[(kind, a)] / med[(kind, b)]) if (kind, a) in med and (kind, b) in med else '-'
    print('| %s | %s | %s | %s | %s | < 1× dockerd, < 1× podman, < 1.3× floor (issue 9) |' % (label, ' | '.join(row), ratio('ctrd', 'dockerd'), ratio('ctrd', 'podman'), ratio('ctrd', 'floor')))
EOF
