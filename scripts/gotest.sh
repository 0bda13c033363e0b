#!/usr/bin/env bash
# gotest.sh TIER [GO TEST ARGS...]: run `go test -json ARGS` and report it
# with scripts/testreport (package result lines, failed tests' output, and
# "TIER: N passed, N failed, N skipped"). With CTR_TEST_TALLY=FILE the counts
# are appended to FILE. Exits non-zero when go test or a test failed.
set -uo pipefail
tier=${1:?usage: gotest.sh TIER [go test args...]}
shift
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/ctr-gotest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/testreport" ./scripts/testreport || exit 1
echo "== $tier tier: go test $*"
go test -json "$@" 2>&1 | "$tmp/testreport" -tier "$tier" ${CTR_TEST_TALLY:+-tally "$CTR_TEST_TALLY"}
st=("${PIPESTATUS[@]}")
if [ "${st[0]}" -ne 0 ] || [ "${st[1]}" -ne 0 ]; then
	echo "== $tier tier FAILED (go test exit ${st[0]})"
	exit 1
fi
echo "== $tier tier passed"
