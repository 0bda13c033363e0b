#!/usr/bin/env bash
# check-units.sh CTRD: check the files of units/ with systemd's own tools.
#
# systemd-analyze verify checks a unit's syntax, its dependencies and that
# its ExecStart= binary exists and is executable. /usr/bin/ctrd is not
# installed on a build machine, and installing it there to check the units
# would touch the host; so the units are copied to a temporary folder with
# ExecStart= pointing at the built binary CTRD (bin/ctrd), and verified
# there. The end-to-end tests check the installed units under a booted
# systemd too. Any message from verify counts as a failure (it exits 0 on
# unknown keys, for example).
#
# The sysusers and tmpfiles files are applied to a temporary root with
# systemd-sysusers --root and systemd-tmpfiles --root, and the result is
# checked. (The D-Bus policy is tested by dbus/ against a private bus, the
# bus activation file by the end-to-end tier.)
set -euo pipefail
cd "$(dirname "$0")/.."
ctrd=$(realpath "${1:?usage: check-units.sh PATH-TO-CTRD}")
[ -x "$ctrd" ] || { echo "check-units: $ctrd is not an executable (make build)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/ctr-check-units.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0

mkdir "$tmp/units"
for u in units/*.socket units/*.service; do
	sed "s|^ExecStart=/usr/bin/ctrd|ExecStart=$ctrd|" "$u" >"$tmp/units/$(basename "$u")"
done
if ! out=$(systemd-analyze verify "$tmp"/units/* 2>&1) || [ -n "$out" ]; then
	echo "check-units: systemd-analyze verify:" >&2
	echo "$out" >&2
	fail=1
fi

root=$tmp/root
mkdir -p "$root/etc"
# sysusers says what it creates; only its exit status and result count.
if ! out=$(systemd-sysusers --root="$root" "$PWD/units/ctr.sysusers" 2>&1); then
	echo "check-units: systemd-sysusers: $out" >&2
	fail=1
fi
grep -q '^ctr:' "$root/etc/group" || { echo "check-units: sysusers made no group ctr" >&2; fail=1; }
if ! out=$(systemd-tmpfiles --root="$root" --create "$PWD/units/ctr.tmpfiles" 2>&1) || [ -n "$out" ]; then
	echo "check-units: systemd-tmpfiles: $out" >&2
	fail=1
fi
for want in "var/lib/ctr 711" "run/ctr 700" "etc/ctr 755"; do
	set -- $want
	got=$(stat -c %a "$root/$1" 2>/dev/null || echo missing)
	[ "$got" = "$2" ] || { echo "check-units: tmpfiles: /$1 is $got, want $2" >&2; fail=1; }
done

if [ "$fail" -ne 0 ]; then
	exit 1
fi
echo "units verified: $(cd "$tmp/units" && echo *) (systemd-analyze verify); ctr.sysusers, ctr.tmpfiles (applied to a temporary root)"
