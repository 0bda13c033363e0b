#!/usr/bin/env bash
# mkpkg.sh FORMAT OUTDIR: build the ctr package as a deb (dpkg-deb) or an rpm
# (rpmbuild) from the one description in packaging/ctr.pkg, with the
# maintainer functions of packaging/maint.sh. Run from the repository root
# after `make build` (it needs bin/ctrd, bin/ctrctl and bin/ctr-shim); `make deb` and
# `make rpm` do both. Prints the path of the package it wrote.
set -euo pipefail

format=${1:?usage: mkpkg.sh deb|rpm OUTDIR}
outdir=${2:?usage: mkpkg.sh deb|rpm OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=ctr.pkg
. "$here/ctr.pkg"
VERSION=${CTR_VERSION:-$VERSION}
ARCH_DEB=amd64
ARCH_RPM=x86_64
case "$(uname -m)" in
aarch64) ARCH_DEB=arm64 ARCH_RPM=aarch64 ;;
esac

work=$(mktemp -d /tmp/ctr-pkg.XXXXXX)
trap '[ -n "${CTR_PKG_KEEP:-}" ] || rm -rf "$work"' EXIT
stage=$work/stage
gen=$work/gen
mkdir -p "$stage" "$gen" "$outdir"
outdir=$(cd "$outdir" && pwd)

for b in ctrd ctrctl ctr-shim; do
	[ -x "$root/bin/$b" ] || { echo "mkpkg: $root/bin/$b is missing: run make build" >&2; exit 1; }
done
"$root/bin/ctrctl" completion bash >"$gen/ctrctl.bash"

# Stage every file of FILES; collect the configuration files.
conffiles=()
declare -A seen=()
while read -r mode src dst flag; do
	[ -n "${mode:-}" ] || continue
	if [ -n "${seen[$dst]:-}" ]; then
		echo "mkpkg: $dst is listed twice in FILES (packaging/ctr.pkg)" >&2
		exit 1
	fi
	seen[$dst]=1
	case "$src" in
	gen:*) from=$gen/${src#gen:} ;;
	*) from=$root/$src ;;
	esac
	install -D -m "$mode" "$from" "$stage$dst"
	if [ "${flag:-}" = conf ]; then conffiles+=("$dst"); fi
done <<<"$FILES"

# script BODY...: a maintainer script: the shared functions, then BODY.
script() {
	printf '#!/bin/sh\nset -e\n\n'
	cat "$here/maint.sh"
	printf '\n%s\n' "$@"
}

build_deb() {
	local deb=$outdir/${NAME}_${VERSION}-${RELEASE}_${ARCH_DEB}.deb
	mkdir -p "$stage/DEBIAN"
	{
		echo "Package: $NAME"
		echo "Version: $VERSION-$RELEASE"
		echo "Architecture: $ARCH_DEB"
		echo "Maintainer: $MAINTAINER"
		echo "Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
		[ -z "$DEB_DEPENDS" ] || echo "Depends: $DEB_DEPENDS"
		[ -z "$DEB_RECOMMENDS" ] || echo "Recommends: $DEB_RECOMMENDS"
		echo "Section: $DEB_SECTION"
		echo "Priority: optional"
		echo "Homepage: $HOMEPAGE"
		echo "Description: $SUMMARY"
		# Continuation lines of the long description start with a space; an
		# empty line is " .".
		sed 's/^$/./; s/^/ /' <<<"$DESCRIPTION"
	} >"$stage/DEBIAN/control"
	if [ "${#conffiles[@]}" -gt 0 ]; then
		printf '%s\n' "${conffiles[@]}" >"$stage/DEBIAN/conffiles"
	fi
	(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
	# postinst configure OLD-VERSION: OLD-VERSION is empty on a first install.
	script 'case "$1" in
configure) ctr_configure "${2:+1}" ;;
esac' >"$stage/DEBIAN/postinst"
	script 'case "$1" in
remove|deconfigure) ctr_stop ;;
esac' >"$stage/DEBIAN/prerm"
	script 'case "$1" in
remove|purge) ctr_disable ;;
esac' >"$stage/DEBIAN/postrm"
	chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
	dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
	echo "$deb"
}

build_rpm() {
	if ! command -v rpmbuild >/dev/null 2>&1; then
		echo "mkpkg: rpmbuild is not installed (apt-get install rpm, or make deps)" >&2
		exit 1
	fi
	local top=$work/rpmbuild spec=$work/ctr.spec
	mkdir -p "$top"/{BUILD,RPMS,SOURCES,SPECS,SRPMS}
	{
		echo "Name: $NAME"
		echo "Version: $VERSION"
		echo "Release: $RELEASE"
		echo "Summary: $SUMMARY"
		echo "License: $LICENSE"
		echo "Group: $RPM_GROUP"
		echo "URL: $HOMEPAGE"
		echo "Packager: $MAINTAINER"
		echo "BuildArch: $ARCH_RPM"
		# The files are built already; rpm must not look into them for
		# dependencies, strip them or split debug info.
		echo "AutoReqProv: no"
		[ -z "$RPM_REQUIRES" ] || echo "Requires: $RPM_REQUIRES"
		[ -z "$RPM_RECOMMENDS" ] || echo "Recommends: $RPM_RECOMMENDS"
		echo
		echo "%description"
		echo "$DESCRIPTION"
		echo
		echo "%install"
		echo "cp -a '$stage'/. %{buildroot}/"
		echo
		echo "%files"
		while read -r mode src dst flag; do
			[ -n "${mode:-}" ] || continue
			if [ "${flag:-}" = conf ]; then
				echo "%config(noreplace) %attr($mode,root,root) $dst"
			else
				echo "%attr($mode,root,root) $dst"
			fi
		done <<<"$FILES"
		# %post/%preun/%postun get the number of versions installed after
		# the operation: 1 after a first install, 2 during an upgrade, 0
		# when the package is erased.
		echo
		echo "%post"
		script 'if [ "$1" -gt 1 ]; then ctr_configure 1; else ctr_configure ""; fi'
		echo
		echo "%preun"
		script 'if [ "$1" -eq 0 ]; then ctr_stop; fi'
		echo
		echo "%postun"
		script 'if [ "$1" -eq 0 ]; then ctr_disable; fi'
	} >"$spec"
	rpmbuild -bb --quiet \
		--define "_topdir $top" \
		--define "debug_package %{nil}" \
		--define "__os_install_post %{nil}" \
		--define "_build_id_links none" \
		"$spec" >&2
	local rpm
	rpm=$(find "$top/RPMS" -name '*.rpm' | head -n1)
	[ -n "$rpm" ] || { echo "mkpkg: rpmbuild wrote no package" >&2; exit 1; }
	cp "$rpm" "$outdir/"
	echo "$outdir/$(basename "$rpm")"
}

case "$format" in
deb) build_deb ;;
rpm) build_rpm ;;
*) echo "mkpkg: unknown format $format (deb or rpm)" >&2; exit 2 ;;
esac
