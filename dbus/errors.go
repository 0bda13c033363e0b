package dbus

import (
	godbus "github.com/godbus/dbus/v5"

	"example.org/ctr/internal/errdefs"
)

// ErrorPrefix starts the name of every error of ctr's methods; the class
// name (errdefs.Class.String) follows: org.example.Ctr.Error.NotFound.
const ErrorPrefix = "org.example.Ctr.Error."

// maxErrorMessage bounds an error message sent on the bus: an error that
// quotes a client's multi-megabyte argument is cut, not echoed back whole.
const maxErrorMessage = 16 << 10

// ErrorName returns the D-Bus error name that stands for an error of class
// c. It is the only place where ctr turns a class into a D-Bus error;
// ClassOfError is its inverse, for clients.
func ErrorName(c errdefs.Class) string { return ErrorPrefix + c.String() }

// ClassOfError returns the error class a D-Bus error name of ctr stands
// for, and Unknown for any other name.
func ClassOfError(name string) errdefs.Class {
	if len(name) <= len(ErrorPrefix) || name[:len(ErrorPrefix)] != ErrorPrefix {
		return errdefs.Unknown
	}
	return errdefs.ParseClass(name[len(ErrorPrefix):])
}

// busError turns err into the D-Bus error a method returns, named after
// its class; nil stays nil.
func busError(err error) *godbus.Error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage] + "… (cut)"
	}
	return godbus.NewError(ErrorName(errdefs.ClassOf(err)), []any{busString(msg)})
}

// The standard errors of the Properties interface.
func errUnknownProperty(iface, name string) *godbus.Error {
	return godbus.NewError("org.freedesktop.DBus.Error.UnknownProperty",
		[]any{busString("no property " + name + " in interface " + iface)})
}

func errUnknownInterface(iface string) *godbus.Error {
	return godbus.NewError("org.freedesktop.DBus.Error.UnknownInterface",
		[]any{busString("the object has no interface " + iface)})
}

func errReadOnly(name string) *godbus.Error {
	return godbus.NewError("org.freedesktop.DBus.Error.PropertyReadOnly",
		[]any{busString("property " + name + " is read-only")})
}
