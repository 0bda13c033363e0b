#!/usr/bin/env bash
# check-units.sh CTRD: check the files of units/ with systemd's own tools.
#
# systemd-analyze verify checks a unit's syntax, its dependencies and that
# its ExecStart= binary exists and is executable. /usr/bin/ctrd and
# /usr/bin/ctrctl are not installed on a build machine, and installing them
# there to check the units would touch the host; so the units are copied to
# a temporary folder with ExecStart= pointing at the built binaries CTRD
# (bin/ctrd) and the ctrctl beside it, and verified there.
# ctr-autostart.service must also keep the settings that make it work at
# boot (oneshot, after and requiring ctr.socket, the condition on ctrd's
# marker file, wanted by multi-user.target); those are checked by name. The end-to-end tests check the installed units under a booted
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
ctrctl=$(dirname "$ctrd")/ctrctl
for b in "$ctrd" "$ctrctl"; do
	[ -x "$b" ] || { echo "check-units: $b is not an executable (make build)" >&2; exit 1; }
done
tmp=$(mktemp -d /tmp/ctr-check-units.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0

mkdir "$tmp/units"
for u in units/*.socket units/*.service; do
	sed -e "s|^ExecStart=/usr/bin/ctrd |ExecStart=$ctrd |" -e "s|^ExecStart=/usr/bin/ctrctl |ExecStart=$ctrctl |" \
		"$u" >"$tmp/units/$(basename "$u")"
done
if ! out=$(systemd-analyze verify "$tmp"/units/* 2>&1) || [ -n "$out" ]; then
	echo "check-units: systemd-analyze verify:" >&2
	echo "$out" >&2
	fail=1
fi

# ctr-autostart.service: the settings it cannot work without.
for want in "Type=oneshot" "Requires=ctr.socket" "After=ctr.socket" \
	"ConditionPathExists=/var/lib/ctr/restart-at-boot" "ExecStart=/usr/bin/ctrctl version" \
	"StandardOutput=null" "WantedBy=multi-user.target"; do
	grep -qx "$want" units/ctr-autostart.service ||
		{ echo "check-units: ctr-autostart.service lacks $want" >&2; fail=1; }
done

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
