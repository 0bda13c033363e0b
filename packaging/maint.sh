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
# reload units, then on a first install enable and start ctr.socket (the
# service starts on the first connection); on an upgrade restart ctr.service
# if it runs (KillMode=process: containers keep running).
ctr_configure() {
	ctr_sysusers_tmpfiles
	ctr_systemd_running || return 0
	systemctl daemon-reload || true
	if [ -z "$1" ]; then
		if command -v deb-systemd-helper >/dev/null 2>&1; then
			deb-systemd-helper unmask ctr.socket >/dev/null || true
			deb-systemd-helper enable ctr.socket >/dev/null || true
		else
			systemctl enable ctr.socket >/dev/null 2>&1 || true
		fi
		systemctl start ctr.socket || true
	else
		systemctl try-restart ctr.service || true
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
