package dbus

import (
	"reflect"

	godbus "github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// File descriptors passed to ctrd (the D-Bus type h) arrive with the
// message that carries them: godbus receives them into ctrd's fd table
// before it knows whether any method will take them, and never closes
// them. Only LoadImage and Build take one (their first argument). Every
// other descriptor, in any message
// (a call with the wrong signature, to a method that takes none, a signal,
// a reply), is closed as soon as the message is read, so that no caller
// can fill ctrd's fd table, and the message is left with -1 in its place.

// guardFDs is the connection's incoming interceptor: it closes every
// descriptor msg carries unless msg is a well-formed LoadImage or Build
// call, whose method then owns its first argument's (the others, such as
// an h in Build's options, are closed too).
func guardFDs(msg *godbus.Message) {
	if _, ok := msg.Headers[godbus.FieldUnixFDs]; !ok {
		return
	}
	from := 0
	if takesFD(msg) {
		from = 1
	}
	for i := from; i < len(msg.Body); i++ {
		msg.Body[i] = closeFDs(reflect.ValueOf(msg.Body[i])).Interface()
	}
}

// takesFD reports whether msg is a call of the manager's LoadImage with
// the one argument of type h, or of its Build with an h and an a{sv},
// that godbus hands to the method.
func takesFD(msg *godbus.Message) bool {
	if msg.Type != godbus.TypeMethodCall {
		return false
	}
	path, _ := msg.Headers[godbus.FieldPath].Value().(godbus.ObjectPath)
	member, _ := msg.Headers[godbus.FieldMember].Value().(string)
	iface, _ := msg.Headers[godbus.FieldInterface].Value().(string)
	sig, _ := msg.Headers[godbus.FieldSignature].Value().(godbus.Signature)
	if path != ManagerPath || (iface != "" && iface != ifaceManager) {
		return false
	}
	switch {
	case member == "LoadImage" && sig.String() == "h" && len(msg.Body) == 1:
	case member == "Build" && sig.String() == "ha{sv}" && len(msg.Body) == 2:
	default:
		return false
	}
	_, ok := msg.Body[0].(godbus.UnixFD)
	return ok
}

var unixFDType = reflect.TypeOf(godbus.UnixFD(0))

// closeFDs closes every UnixFD in v, however deep (arrays, maps, structs,
// variants), and returns v with -1 in their place.
func closeFDs(v reflect.Value) reflect.Value {
	if !v.IsValid() {
		return v
	}
	if v.Type() == unixFDType {
		if fd := int(v.Int()); fd >= 0 {
			_ = unix.Close(fd)
		}
		return reflect.ValueOf(godbus.UnixFD(-1))
	}
	if v.Type() == reflect.TypeOf(godbus.Variant{}) {
		inner := closeFDs(reflect.ValueOf(v.Interface().(godbus.Variant).Value()))
		if !inner.IsValid() {
			return v
		}
		return reflect.ValueOf(godbus.MakeVariantWithSignature(inner.Interface(), v.Interface().(godbus.Variant).Signature()))
	}
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		inner := closeFDs(v.Elem())
		out := reflect.New(v.Type()).Elem()
		out.Set(inner)
		return out
	case reflect.Slice, reflect.Array:
		out := reflect.New(v.Type()).Elem()
		if v.Kind() == reflect.Slice {
			out = reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		}
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(closeFDs(v.Index(i)))
		}
		return out
	case reflect.Map:
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		it := v.MapRange()
		for it.Next() {
			out.SetMapIndex(closeFDs(it.Key()), closeFDs(it.Value()))
		}
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := 0; i < v.NumField(); i++ {
			if out.Field(i).CanSet() {
				out.Field(i).Set(closeFDs(v.Field(i)))
			}
		}
		return out
	}
	return v
}
