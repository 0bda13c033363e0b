package container

import (
	"errors"
	"time"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/internal/errdefs"
)

// Restart back-off, as Docker's: the first restart after 100 ms, each
// next one after twice the delay, at most a minute; a container that ran
// for at least 10 s starts over at 100 ms.
const (
	backoffMin   = 100 * time.Millisecond
	backoffMax   = time.Minute
	backoffReset = 10 * time.Second
)

// ValidateRestartPolicy checks a restart policy and an auto-remove flag
// as Docker does, with Docker's messages, as InvalidArgument errors.
func ValidateRestartPolicy(p container.RestartPolicy, autoRemove bool) error {
	if err := container.ValidateRestartPolicy(p); err != nil {
		return errdefs.Wrap(errdefs.InvalidArgumentClass, errors.Unwrap(err))
	}
	if autoRemove && !p.IsNone() {
		return errdefs.InvalidArgument("can't create 'AutoRemove' container with restart policy")
	}
	return nil
}

// shouldRestart decides, when a run ended by itself with exitCode, whether
// the policy restarts the container. restarts is how many times it
// restarted already; manual is set when stop or kill ended it.
func shouldRestart(p container.RestartPolicy, exitCode, restarts int, manual bool) bool {
	if manual {
		return false
	}
	switch p.Name {
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		return true
	case container.RestartPolicyOnFailure:
		return exitCode != 0 && (p.MaximumRetryCount == 0 || restarts < p.MaximumRetryCount)
	}
	return false
}

// startAtBoot decides whether the daemon starts a stopped container when
// it starts itself: always does, unless-stopped does unless a user
// stopped it.
func startAtBoot(p container.RestartPolicy, manual bool) bool {
	switch p.Name {
	case container.RestartPolicyAlways:
		return true
	case container.RestartPolicyUnlessStopped:
		return !manual
	}
	return false
}

// nextBackoff returns the delay before the next restart, given the last
// delay and how long the run lasted.
func nextBackoff(last, ran time.Duration) time.Duration {
	if ran >= backoffReset || last == 0 {
		return backoffMin
	}
	next := 2 * last
	if next > backoffMax {
		next = backoffMax
	}
	return next
}
