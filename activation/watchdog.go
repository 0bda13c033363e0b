package activation

import (
	"context"
	"log/slog"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"example.org/ctr/internal/errdefs"
)

// WatchdogInterval returns the watchdog interval systemd asked for
// (WATCHDOG_USEC, WatchdogSec= in the unit), or 0 when the watchdog is off
// or meant for another process (WATCHDOG_PID), as
// https://www.freedesktop.org/software/systemd/man/sd_watchdog_enabled.html
// says. It unsets both variables. A malformed value is an InvalidArgument
// error.
func WatchdogInterval() (time.Duration, error) {
	d, err := sddaemon.SdWatchdogEnabled(true)
	if err != nil {
		return 0, errdefs.InvalidArgument("watchdog: %v", err)
	}
	return d, nil
}

// RunWatchdog feeds the watchdog of n until ctx is done: every interval/2
// (and once at the start) it runs check with a deadline of interval/4 and
// sends WATCHDOG=1 only when check returned nil in time. A check that fails
// or is late skips the ping and is logged at warn level with the error;
// while a late check has still not returned, no new check starts and every
// tick is logged as missed. When pings stop, systemd kills and restarts the
// service once the interval has passed: that is the point.
//
// check should prove that ctrd can serve (a job round-trips through the
// engine, the state folder answers); it must not just return nil. With a
// disabled Notifier or an interval of 0, RunWatchdog returns at once.
func RunWatchdog(ctx context.Context, n *Notifier, interval time.Duration, check func(context.Context) error, log *slog.Logger) {
	if !n.Enabled() || interval <= 0 {
		return
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	period, deadline := interval/2, interval/4
	ticker := time.NewTicker(period)
	defer ticker.Stop()

	// running is non-nil while a check runs; it yields its result.
	var running chan error
	var started time.Time
	failing := false
	for {
		if running != nil {
			select {
			case <-running:
				// A late answer; its ticks were already logged as missed.
				running = nil
			default:
			}
		}
		if running == nil {
			running = make(chan error, 1)
			started = time.Now()
			go func(done chan<- error) {
				cctx, cancel := context.WithTimeout(ctx, deadline)
				defer cancel()
				done <- check(cctx)
			}(running)
		}
		timer := time.NewTimer(deadline)
		var err error
		select {
		case err = <-running:
			running = nil
			if err == nil && time.Since(started) > deadline {
				err = errdefs.Errorf(errdefs.DeadlineExceededClass, "health check answered after %s, more than %s", time.Since(started).Round(time.Millisecond), deadline)
			}
		case <-timer.C:
			err = errdefs.Errorf(errdefs.DeadlineExceededClass, "health check has not answered for %s (deadline %s)", time.Since(started).Round(time.Millisecond), deadline)
		case <-ctx.Done():
			timer.Stop()
			return
		}
		timer.Stop()

		if err != nil {
			failing = true
			log.Warn("watchdog: health check failed, not feeding the watchdog", "err", err, "interval", interval)
		} else {
			if failing {
				failing = false
				log.Info("watchdog: health check passes again, feeding the watchdog", "interval", interval)
			}
			if perr := n.Watchdog(); perr != nil {
				log.Warn("watchdog: ping failed", "err", perr)
			}
		}

		select {
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
	}
}
