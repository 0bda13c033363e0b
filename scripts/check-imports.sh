#!/usr/bin/env bash
# check-imports.sh: enforce the dependency rules of DESIGN.md with `go list
# -deps` (so indirect imports count too):
#   drivers/...  must not import engine, api, dbus, daemon;
#   engine/...   must not import api, dbus, daemon, client, cli;
#   network/...  (a service) must not import a transport, the daemon or
#                another service;
#   builder/...  (over the container and image services) must not import
#                a transport or the daemon.
# Prints every violation (package and what it pulls in) and exits 1 if any.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
bad=0

# rule PKGPATTERN FORBIDDEN...: no package matching PKGPATTERN may depend on
# a package under any FORBIDDEN folder.
rule() {
	local pattern=$1
	shift
	local re
	re="^$mod/($(
		IFS='|'
		echo "$*"
	))(/|\$)"
	local pkgs
	# A pattern that matches nothing yet (the folder does not exist) is fine.
	pkgs=$(go list "$pattern" 2>/dev/null || true)
	for p in $pkgs; do
		local hits
		hits=$(go list -deps -f '{{.ImportPath}}' "$p" | grep -E "$re" || true)
		if [ -n "$hits" ]; then
			echo "import rule broken: $p depends on: $(echo "$hits" | tr '\n' ' ')" >&2
			bad=1
		fi
	done
}

rule "./drivers/..." engine api dbus daemon
rule "./engine/..." api dbus daemon client cli
rule "./network/..." api dbus daemon client cli container image
rule "./builder/..." api dbus daemon client cli
if [ "$bad" -ne 0 ]; then
	exit 1
fi
echo "import rules hold"
