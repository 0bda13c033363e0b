# Shell functions shared by the deb maintainer scripts and the rpm scriptlets
# of ctr. packaging/mkpkg.sh pastes this file into each script, then a few
# lines that call these functions for the format's own arguments. POSIX sh.

# ctr_systemd_running: true when systemd is PID 1 (the test of sd_booted(3)).
ctr_systemd_running() {
	[ -d /run/systemd/system ]
}

# ctr_sysusers_tmpfiles: make group ctr and the state folders.
ctr_sysusers_tmpfiles() {
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers /usr/lib/sysusers.d/ctr.conf
	elif ! getent group ctr >/dev/null 2>&1; then
		groupadd --system ctr
	fi
	if command -v systemd-tmpfiles >/dev/null 2>&1; then
		systemd-tmpfiles --create /usr/lib/tmpfiles.d/ctr.conf || true
	else
		install -d -m 0711 /var/lib/ctr
		install -d -m 0700 /run/ctr
		install -d -m 0755 /etc/ctr
	fi
}

# ctr_configure UPGRADE: after the files are in place. UPGRADE is "1" on an
# upgrade, empty on a first install. Only when systemd runs as PID 1:
# reload units; enable and start ctr.socket on a first install, and on an
# upgrade when it was enabled before (an admin's disable is kept); restart
# ctr.service if it runs, so that the new ctrd serves (KillMode=process:
# containers keep running). The service itself starts on the first
# connection to the socket.
ctr_configure() {
	ctr_sysusers_tmpfiles
	ctr_systemd_running || return 0
	systemctl daemon-reload || true
	if ctr_want_enabled "$1"; then
		if command -v deb-systemd-helper >/dev/null 2>&1; then
			deb-systemd-helper unmask ctr.socket >/dev/null || true
			deb-systemd-helper enable ctr.socket >/dev/null || true
		else
			systemctl enable ctr.socket >/dev/null 2>&1 || true
		fi
		systemctl start ctr.socket || true
	elif command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper update-state ctr.socket >/dev/null || true
	fi
	systemctl try-restart ctr.service || true
}

# ctr_want_enabled UPGRADE: whether ctr.socket is to be enabled. With
# deb-systemd-helper, its record decides (no record, as on a first install
# or after a removal, means yes); otherwise yes on a first install, and on
# an upgrade only if it is enabled now.
ctr_want_enabled() {
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper --quiet was-enabled ctr.socket
	elif [ -z "$1" ]; then
		return 0
	else
		systemctl --quiet is-enabled ctr.socket
	fi
}

# ctr_stop: before the package is removed: stop the socket and the service.
ctr_stop() {
	ctr_systemd_running || return 0
	systemctl stop ctr.socket ctr.service || true
}

# ctr_disable: after removal: forget the enablement links.
ctr_disable() {
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper purge ctr.socket ctr.service >/dev/null || true
		deb-systemd-helper unmask ctr.socket ctr.service >/dev/null || true
	fi
	rm -f /etc/systemd/system/sockets.target.wants/ctr.socket \
		/etc/systemd/system/multi-user.target.wants/ctr.service
	if ctr_systemd_running; then
		systemctl daemon-reload || true
	fi
}
