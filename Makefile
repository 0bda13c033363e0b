# ctr's Makefile. `make help` lists the targets; each has a one-line `##`
# comment, which is what help prints.
#
# The tests come in three tiers (internal/testenv): unit (no privileges),
# root (CTR_TEST_ROOT=1: namespaces, mounts, a private dbus-daemon, real
# activated sockets) and end-to-end (CTR_TEST_E2E=1: a real systemd booted
# in systemd-nspawn, with the built .deb installed in it). `make test` runs
# all three with CTR_TEST_STRICT=1, so a tier that cannot run here fails
# instead of being skipped. .ci/run runs make deps, check, run (once) and test.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO ?= go
MODULE := example.org/ctr

# The version comes from the package description, the one place it is set.
VERSION := $(shell . packaging/ctr.pkg && echo $$VERSION)
PKG_VERSION := $(shell . packaging/ctr.pkg && echo $$VERSION-$$RELEASE)
GIT_COMMIT := $(shell git describe --always --dirty --abbrev=12 --exclude '*' 2>/dev/null || echo unknown)
# The commit's time rather than the clock's, so that a build is repeatable.
BUILD_TIME := $(shell TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X $(MODULE)/internal/version.Version=$(VERSION) \
	-X $(MODULE)/internal/version.GitCommit=$(GIT_COMMIT) \
	-X $(MODULE)/internal/version.BuildTime=$(BUILD_TIME)
# Static binaries: the packages then depend on nothing at run time.
BUILD_ENV := CGO_ENABLED=0

DIST := dist
DEB := $(DIST)/ctr_$(PKG_VERSION)_amd64.deb
RPM := $(DIST)/ctr-$(PKG_VERSION).x86_64.rpm

# Debian packages the tests and packaging need (make deps installs them):
# systemd-container: systemd-nspawn for the end-to-end tier; systemd:
# systemd-analyze, systemd-socket-activate, sysusers and tmpfiles; dbus:
# dbus-daemon for a private bus; busybox-static: a tiny root file system for
# containers; iproute2, nftables: network namespaces and NAT in root tests;
# rpm: rpmbuild for make rpm; util-linux: nsenter; skopeo, umoci: image
# interoperability tests; zstd: compressed layers; docker-compose: Compose
# v1 (1.29) against ctrd in the root tier; docker-registry: the real
# registry that pull and push tests run on loopback.
DEPS := make systemd systemd-container dbus busybox-static iproute2 nftables rpm util-linux \
	skopeo umoci zstd docker-compose docker-registry bzip2 xz-utils

# Compose v2, the docker CLI's plugin, for the root tier: built once from
# the Go module proxy (the newest release whose go.mod allows go install)
# and kept outside the tree, so that a second run does not build it again.
COMPOSE_V2_VERSION := v2.35.0
COMPOSE_V2 ?= $(HOME)/.cache/ctr-test/compose-$(COMPOSE_V2_VERSION)/docker-compose

# Where each tier looks for tests. The end-to-end tier boots a machine, so
# it runs only the packages that hold end-to-end tests.
UNIT_PKGS ?= ./...
ROOT_PKGS ?= ./...
E2E_PKGS ?= ./test/e2e/...
TESTFLAGS ?=
# Each tier appends "passed failed skipped" here; make test prints the sum.
TALLY := $(CURDIR)/.test-tally

RUN_FLAGS ?=

.PHONY: help build deps compose test test-unit test-root test-e2e test-fault test-fuzz check fmt vet imports \
	check-units run deb rpm bench bench-network bench-pull bench-seccomp clean

help: ## list the targets
	@echo "ctr $(VERSION): make TARGET, where TARGET is one of"
	@grep -E '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | \
		sed -E 's/^([a-z0-9-]+):.*## (.*)/  \1\t\2/' | expand -t 16

build: ## build bin/ctrd, bin/ctrctl and bin/ctr-shim (static, version stamped)
	$(BUILD_ENV) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ ./cmd/ctrd ./cmd/ctrctl ./cmd/ctr-shim

deps: ## apt-get install what building and testing need (quick when present)
	@scripts/deps.sh $(DEPS)

test: ## run every tier: unit (-race), root, end to end, fault, a short fuzz run; strict
	@rm -f $(TALLY); rc=0; \
	for tier in unit root e2e fault fuzz; do \
		$(MAKE) --no-print-directory test-$$tier CTR_TEST_TALLY=$(TALLY) || rc=1; \
	done; \
	echo; $(GO) run ./scripts/testreport -total $(TALLY) || rc=1; rm -f $(TALLY); \
	if [ $$rc -ne 0 ]; then echo "make test: FAILED"; else echo "make test: every tier passed"; fi; \
	exit $$rc

test-unit: ## unit tier: go test -race, no privileges needed
	CTR_TEST_STRICT=1 scripts/gotest.sh unit -race -timeout 5m $(TESTFLAGS) $(UNIT_PKGS)

compose: $(COMPOSE_V2) ## build Compose v2 for the root tier (once; COMPOSE_V2 names it)

$(COMPOSE_V2):
	@mkdir -p $(dir $@)
	GOBIN=$(dir $@) $(GO) install github.com/docker/compose/v2/cmd@$(COMPOSE_V2_VERSION)
	mv $(dir $@)cmd $@

test-root: compose ## root tier: CTR_TEST_ROOT=1 (run as root)
	CTR_TEST_ROOT=1 CTR_TEST_STRICT=1 CTR_COMPOSE_V2=$(COMPOSE_V2) scripts/gotest.sh root -p 1 -timeout 10m $(TESTFLAGS) $(ROOT_PKGS)

test-e2e: deb rpm ## end-to-end tier: boot systemd in systemd-nspawn, install the .deb, drive it
	CTR_TEST_E2E=1 CTR_TEST_STRICT=1 CTR_E2E_DEB=$(abspath $(DEB)) CTR_E2E_RPM=$(abspath $(RPM)) \
		scripts/gotest.sh e2e -p 1 -timeout 30m $(TESTFLAGS) $(E2E_PKGS)

# The fault tier: the real ctrd killed with SIGKILL amid concurrent work,
# FAULT_ROUNDS times, restarted on the same state, invariants checked
# (test/fault). A failing round prints its seed: FAULT_SEED=N replays it.
FAULT_ROUNDS ?= 20
FAULT_SEED ?=

test-fault: ## fault tier: kill -9 ctrd amid concurrent work, restart, check invariants (FAULT_ROUNDS)
	CTR_TEST_ROOT=1 CTR_TEST_FAULT=1 CTR_TEST_STRICT=1 CTR_FAULT_ROUNDS=$(FAULT_ROUNDS) CTR_FAULT_SEED=$(FAULT_SEED) \
		scripts/gotest.sh fault -p 1 -timeout 20m $(TESTFLAGS) ./test/fault/

# The fuzz targets and their packages; each gets FUZZTIME of new inputs on
# top of its seed corpus (which the unit tier already runs).
FUZZ_TARGETS := FuzzExtract:./layertar FuzzParseDockerManifest:./image/archive FuzzParseIndex:./image/archive \
	FuzzCreateBody:./container FuzzListFilter:./container FuzzParseFilter:./events \
	FuzzQueryValues:./container FuzzCreateOptions:./dbus FuzzNetworkOptions:./dbus
FUZZTIME ?= 15s

test-fuzz: ## short fuzz runs of the tar reader, the archive parsers, the API decoding and the D-Bus option maps (FUZZTIME each)
	@for t in $(FUZZ_TARGETS); do \
		CTR_TEST_ROOT=1 CTR_TEST_STRICT=1 scripts/gotest.sh fuzz -run '^$$' -fuzz "^$${t%%:*}$$" \
			-fuzztime $(FUZZTIME) -fuzzminimizetime 2s $${t#*:} || exit 1; \
	done

check: fmt vet imports check-units ## gofmt, go vet, import rules, unit files

fmt: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt:"; echo "$$out"; exit 1; fi; \
	echo "gofmt: clean"

vet: ## go vet every package
	$(GO) vet ./...

imports: ## enforce the dependency rules (drivers and engine import no transport)
	@scripts/check-imports.sh

# systemd-analyze verify wants ExecStart= to exist; the units are checked
# in a temporary copy whose ExecStart= points at bin/ctrd (nothing is
# installed on this machine). The end-to-end tier checks the installed
# units under a booted systemd as well.
check-units: build ## systemd-analyze verify the units; apply sysusers and tmpfiles to a temporary root
	@scripts/check-units.sh bin/ctrd

run: build ## demo: socket-activate ctrd on /tmp/ctr-run/ctr.sock, talk to it (RUN_FLAGS=--once to stop at the end)
	scripts/run.sh $(RUN_FLAGS)

deb: build ## build dist/ctr_VERSION_amd64.deb with dpkg-deb from packaging/ctr.pkg
	packaging/mkpkg.sh deb $(DIST)

rpm: build ## build the rpm with rpmbuild from the same description
	packaging/mkpkg.sh rpm $(DIST)

bench: build ## benchmarks against dockerd and podman (bench/run.sh)
	@[ -x bench/run.sh ] || { echo "bench/run.sh is not there yet"; exit 1; }
	bench/run.sh

bench-network: build ## what networking costs: run with bridge, -p and none, first accept, throughput; ctrd next to dockerd
	bench/network.sh

bench-pull: build ## pull of a generated 240 MiB image from a loopback registry: ctrd, dockerd, podman and the floor (curl + tar -x)
	bench/pull.sh

bench-seccomp: build ## what the seccomp filter costs: a start and a getpid loop, with and without it; ctrd next to dockerd and runc
	bench/seccomp.sh

clean: ## remove bin/ and dist/
	rm -rf bin $(DIST) $(TALLY)
