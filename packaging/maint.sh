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

# The units enabled on install: the socket, and the boot-time start of
# containers that have a restart policy (ctr-autostart.service, skipped at
# boot unless /var/lib/ctr/restart-at-boot exists).
CTR_UNITS="ctr.socket ctr-autostart.service"

# ctr_configure UPGRADE: after the files are in place. UPGRADE is "1" on an
# upgrade, empty on a first install. Only when systemd runs as PID 1:
# reload units; enable ctr.socket and ctr-autostart.service on a first
# install, and on an upgrade when they were enabled before (an admin's
# disable is kept); start ctr.socket; restart ctr.service if it runs, so
# that the new ctrd serves (KillMode=process: containers keep running). The
# service itself starts on the first connection to the socket, or at boot
# through ctr-autostart.service when containers want it.
ctr_configure() {
	ctr_sysusers_tmpfiles
	ctr_systemd_running || return 0
	systemctl daemon-reload || true
	for unit in $CTR_UNITS; do
		if ctr_want_enabled "$unit" "$1"; then
			if command -v deb-systemd-helper >/dev/null 2>&1; then
				deb-systemd-helper unmask "$unit" >/dev/null || true
				deb-systemd-helper enable "$unit" >/dev/null || true
			else
				systemctl enable "$unit" >/dev/null 2>&1 || true
			fi
			if [ "$unit" = ctr.socket ]; then
				systemctl start ctr.socket || true
			fi
		elif command -v deb-systemd-helper >/dev/null 2>&1; then
			deb-systemd-helper update-state "$unit" >/dev/null || true
		fi
	done
	systemctl try-restart ctr.service || true
}

# ctr_want_enabled UNIT UPGRADE: whether UNIT is to be enabled. With
# deb-systemd-helper, its record decides (no record, as on a first install,
# after a removal or for a unit new in this version, means yes); otherwise
# yes on a first install, and on an upgrade only if it is enabled now
# (an rpm upgrade from a version without ctr-autostart.service leaves it
# disabled: systemctl enable ctr-autostart.service).
ctr_want_enabled() {
	if command -v deb-systemd-helper >/dev/null 2>&1; then
		deb-systemd-helper --quiet was-enabled "$1"
	elif [ -z "$2" ]; then
		return 0
	else
		systemctl --quiet is-enabled "$1"
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
		deb-systemd-helper purge $CTR_UNITS ctr.service >/dev/null || true
		deb-systemd-helper unmask $CTR_UNITS ctr.service >/dev/null || true
	fi
	rm -f /etc/systemd/system/sockets.target.wants/ctr.socket \
		/etc/systemd/system/multi-user.target.wants/ctr.service \
		/etc/systemd/system/multi-user.target.wants/ctr-autostart.service
	if ctr_systemd_running; then
		systemctl daemon-reload || true
	fi
}
