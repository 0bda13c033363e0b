#!/bin/sh
# busybox-image.sh [OUT]: build a `docker save` archive of busybox:latest
# from Debian's busybox-static, with no network: /bin/busybox, a symlink
# for every applet, a minimal /etc. The archive is reproducible (fixed
# times and owners), so its image id is the same on every run with the
# same busybox. Load it with `ctrctl load -i OUT` or `docker load -i OUT`.
# The image's creation time, and the time of its files, is the modification
# time of the busybox binary (dpkg keeps the package's), or
# SOURCE_DATE_EPOCH when it is set.
#
# Needs: busybox-static (apt-get install busybox-static), tar, sha256sum.
# BUSYBOX (default /bin/busybox) and TAG (default busybox:latest) change
# what is used and how the image is named.
set -eu

out=${1:-busybox.tar}
bb=${BUSYBOX:-/bin/busybox}
tag=${TAG:-busybox:latest}

if [ ! -x "$bb" ]; then
	echo "busybox-image.sh: $bb not found; apt-get install busybox-static" >&2
	exit 1
fi
if ldd "$bb" >/dev/null 2>&1; then
	echo "busybox-image.sh: $bb is dynamically linked; apt-get install busybox-static" >&2
	exit 1
fi

# A real time, yet the same on every run: when this busybox was built.
epoch=${SOURCE_DATE_EPOCH:-$(stat -L -c %Y "$bb")}
case $epoch in
'' | *[!0-9]*)
	echo "busybox-image.sh: bad time $epoch (SOURCE_DATE_EPOCH or the mtime of $bb)" >&2
	exit 1
	;;
esac
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

case $(uname -m) in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
armv7l) arch=arm ;;
i?86) arch=386 ;;
*) arch=$(uname -m) ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
root=$work/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp" "$root/var/tmp" \
	"$root/proc" "$root/sys" "$root/dev" "$root/home" "$root/usr/bin" "$root/usr/sbin" "$root/sbin"
cp "$bb" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
"$bb" --list-full | while read -r applet; do
	case $applet in
	bin/busybox | "") continue ;;
	esac
	mkdir -p "$root/$(dirname "$applet")"
	ln -sf /bin/busybox "$root/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"

tarflags="--sort=name --numeric-owner --owner=0 --group=0 --mtime=@$epoch --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"
# shellcheck disable=SC2086
(cd "$root" && tar $tarflags -cf "$work/layer.tar" $(ls -A))
diff=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)

version=$("$bb" 2>&1 | head -n 1 | sed 's/ multi-call binary.*//; s/"/_/g')
printf '{"architecture":"%s","os":"linux","created":"%s","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"scripts/busybox-image.sh: %s"}]}' \
	"$arch" "$created" "$diff" "$created" "$version" >"$work/config.json"
cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)

mkdir -p "$work/out/$diff"
mv "$work/layer.tar" "$work/out/$diff/layer.tar"
mv "$work/config.json" "$work/out/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$tag" "$diff" >"$work/out/manifest.json"
# shellcheck disable=SC2086
(cd "$work/out" && tar $tarflags -cf "$work/image.tar" manifest.json "$cfg.json" "$diff")
mv "$work/image.tar" "$out"
echo "busybox-image.sh: wrote $tag (sha256:$cfg) to $out"
