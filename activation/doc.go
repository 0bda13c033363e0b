// Package activation is how ctrd meets systemd: the sockets it serves on,
// the state it reports, the watchdog it feeds and the journal it logs to.
//
//   - Listen returns the listeners for the -H hosts: sockets inherited by
//     socket activation (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES; see
//     https://www.freedesktop.org/software/systemd/man/sd_listen_fds.html),
//     chosen all at once with fd:// or by FileDescriptorName with fd://NAME,
//     or sockets it binds itself (unix://PATH, loopback tcp://HOST:PORT).
//     ListenTLS does the same with TLS and required client certificates on
//     every TCP listener, bound or inherited (ServerTLS loads dockerd's
//     --tlsverify files), and then allows TCP on any address; without it a
//     TCP socket that is not loopback is refused.
//   - Notifier speaks the sd_notify protocol (NOTIFY_SOCKET; see
//     https://www.freedesktop.org/software/systemd/man/sd_notify.html):
//     READY=1, STATUS=, STOPPING=1, RELOADING=1 with MONOTONIC_USEC, WATCHDOG=1.
//   - WatchdogInterval reads WATCHDOG_USEC and WATCHDOG_PID (see
//     https://www.freedesktop.org/software/systemd/man/sd_watchdog_enabled.html)
//     and RunWatchdog pings at half that interval, but only while a health
//     check passes within a deadline: a blind timer is not a watchdog.
//   - NewLogHandler is the log/slog handler of ctrd: the journal's native
//     protocol (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/) with one journal
//     field per attribute when stderr is the journal (JOURNAL_STREAM, see
//     systemd.exec(5)), plain text otherwise.
//
// Every variable systemd passes (LISTEN_*, NOTIFY_SOCKET, WATCHDOG_*) is
// removed from the environment once taken, so that processes ctrd starts
// never believe they were activated or supervised themselves.
//
// The package builds on github.com/coreos/go-systemd/v22 (activation,
// daemon, journal) and adds what ctrd needs on top: errors that say what is
// wrong and carry an errdefs class, socket permissions and stale socket
// files, a notifier that keeps its socket after the variable is gone, and a
// journal writer whose socket tests can replace.
package activation
