#!/bin/bash
# bench/deps.sh: install the Debian packages bench/run.sh measures with or
# against, those not installed yet (quick when all are; bench/run.sh calls
# it unless NO_DEPS=1):
#   docker.io            dockerd, containerd and the docker CLI (/usr/bin/docker)
#   podman crun runc conmon  podman run, its API service, and the bare OCI runtimes
#   hyperfine            the run section's timings
#   busybox-static       the busybox image (scripts/busybox-image.sh)
#   dbus                 dbus-daemon, the private bus of the dbus section
#   systemd              systemd-socket-activate
#   tar coreutils util-linux  tar -x, sync, mountpoint
#   docker-registry skopeo curl jq python3  the pull benchmark (bench/pull.sh)
#   gcc libc6-dev        bench/seccomp.sh's static getpid loop
exec "$(dirname "$0")/../scripts/deps.sh" docker.io podman crun runc conmon hyperfine busybox-static \
	dbus systemd tar coreutils util-linux docker-registry skopeo curl jq python3 gcc libc6-dev
