// Package errdefs defines the error classes of ctr.
//
// Every error that crosses a package boundary carries at most one class:
// not found, invalid argument, conflict, and so on. Code that produces an
// error wraps it with a class (NotFound, InvalidArgument, …); code that must
// react to an error asks for its class (ClassOf, IsNotFound, …). Only the
// transports turn a class into something else: an HTTP status code in api/,
// a D-Bus error name in dbus/, an exit code in the CLI. Nobody matches on the
// text of a message.
package errdefs

import (
	"context"
	"errors"
	"fmt"
)

// Class is the kind of an error, independent of its message.
type Class int

// The classes. Unknown is the class of any error that has none.
const (
	Unknown Class = iota
	NotFoundClass
	InvalidArgumentClass
	ConflictClass
	UnavailableClass
	PermissionDeniedClass
	UnauthenticatedClass
	NotImplementedClass
	NotModifiedClass
	CanceledClass
	DeadlineExceededClass
)

var classNames = [...]string{
	Unknown:               "Internal",
	NotFoundClass:         "NotFound",
	InvalidArgumentClass:  "InvalidArgument",
	ConflictClass:         "Conflict",
	UnavailableClass:      "Unavailable",
	PermissionDeniedClass: "PermissionDenied",
	UnauthenticatedClass:  "Unauthenticated",
	NotImplementedClass:   "NotImplemented",
	NotModifiedClass:      "NotModified",
	CanceledClass:         "Canceled",
	DeadlineExceededClass: "DeadlineExceeded",
}

// String returns the class's stable name, such as "NotFound". The names are
// used on the wire (the D-Bus error name suffix, the job status of the
// generic job route), so they never change.
func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return classNames[Unknown]
	}
	return classNames[c]
}

// Classes lists every class, Unknown first.
func Classes() []Class {
	out := make([]Class, len(classNames))
	for i := range out {
		out[i] = Class(i)
	}
	return out
}

// ParseClass is the inverse of Class.String. A name it does not know is
// Unknown.
func ParseClass(name string) Class {
	for i, n := range classNames {
		if n == name {
			return Class(i)
		}
	}
	return Unknown
}

// classed is an error with a class. Its message is the wrapped error's.
type classed struct {
	err   error
	class Class
}

func (e *classed) Error() string { return e.err.Error() }
func (e *classed) Unwrap() error { return e.err }

// Wrap gives err the class c. A nil err stays nil. Wrapping an error that
// already has a class replaces the class for callers of ClassOf.
func Wrap(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &classed{err: err, class: c}
}

// Errorf formats a new error of class c. %w works as in fmt.Errorf.
func Errorf(c Class, format string, args ...any) error {
	return &classed{err: fmt.Errorf(format, args...), class: c}
}

// NotFound formats an error meaning the named thing does not exist.
func NotFound(format string, args ...any) error { return Errorf(NotFoundClass, format, args...) }

// InvalidArgument formats an error meaning the request itself is wrong.
func InvalidArgument(format string, args ...any) error {
	return Errorf(InvalidArgumentClass, format, args...)
}

// Conflict formats an error meaning the request clashes with current state.
func Conflict(format string, args ...any) error { return Errorf(ConflictClass, format, args...) }

// Unavailable formats an error meaning the service cannot serve now
// (shutting down, a dependency is missing); a later retry may succeed.
func Unavailable(format string, args ...any) error {
	return Errorf(UnavailableClass, format, args...)
}

// PermissionDenied formats an error meaning the caller may not do this.
func PermissionDenied(format string, args ...any) error {
	return Errorf(PermissionDeniedClass, format, args...)
}

// Unauthenticated formats an error meaning credentials are missing or wrong.
func Unauthenticated(format string, args ...any) error {
	return Errorf(UnauthenticatedClass, format, args...)
}

// NotImplemented formats an error meaning this build or host cannot do it.
func NotImplemented(format string, args ...any) error {
	return Errorf(NotImplementedClass, format, args...)
}

// NotModified formats an error meaning the request asked for a state that
// already holds (starting a running container).
func NotModified(format string, args ...any) error {
	return Errorf(NotModifiedClass, format, args...)
}

// ClassOf returns the class of err: the outermost class found by unwrapping,
// Canceled or DeadlineExceeded for the context errors, Unknown otherwise.
// A nil error has class Unknown too; callers check for nil first.
func ClassOf(err error) Class {
	var c *classed
	if errors.As(err, &c) {
		return c.class
	}
	switch {
	case errors.Is(err, context.Canceled):
		return CanceledClass
	case errors.Is(err, context.DeadlineExceeded):
		return DeadlineExceededClass
	}
	return Unknown
}

// IsNotFound reports whether err is of class NotFound.
func IsNotFound(err error) bool { return ClassOf(err) == NotFoundClass }

// IsInvalidArgument reports whether err is of class InvalidArgument.
func IsInvalidArgument(err error) bool { return ClassOf(err) == InvalidArgumentClass }

// IsConflict reports whether err is of class Conflict.
func IsConflict(err error) bool { return ClassOf(err) == ConflictClass }

// IsUnavailable reports whether err is of class Unavailable.
func IsUnavailable(err error) bool { return ClassOf(err) == UnavailableClass }

// IsPermissionDenied reports whether err is of class PermissionDenied.
func IsPermissionDenied(err error) bool { return ClassOf(err) == PermissionDeniedClass }
