package dbus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/system"
)

// A job's reply reaches the bus the way it reaches HTTP: it is encoded as
// JSON first, so that the keys, omitted fields and custom encodings are the
// same on both transports, and the JSON is then turned into D-Bus values:
//
//	JSON string         s
//	JSON integer        x (t when it only fits an unsigned 64-bit integer)
//	JSON number         d
//	JSON true/false     b
//	JSON object         a{sv}
//	JSON array          aT when every element has the same type T, else av
//	                    (an empty array is av)
//	JSON null           left out of an object; "" in an array
//
// Every string that leaves ctrd is made valid for D-Bus (see busString).

// busString returns s made valid as a D-Bus string: the bus daemon
// disconnects a peer that sends invalid UTF-8 or a NUL byte, so a job's
// binary output must never reach it as it is. Invalid bytes and NULs become
// U+FFFD.
func busString(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// busStrings applies busString to every element of ss, in a new slice.
func busStrings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = busString(s)
	}
	return out
}

// busStringMap applies busString to every key and value of m, in a new
// map; nil becomes an empty map (D-Bus has no nil).
func busStringMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[busString(k)] = busString(v)
	}
	return out
}

// decodeJSON encodes v as JSON and decodes it again into maps, slices and
// json.Numbers.
func decodeJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

// replyDict turns a job's reply into an a{sv} dictionary; the reply must
// encode as a JSON object.
func replyDict(v any) (map[string]godbus.Variant, error) {
	j, err := decodeJSON(v)
	if err != nil {
		return nil, err
	}
	obj, ok := j.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("reply of type %T is not an object", v)
	}
	return jsonDict(obj), nil
}

// jsonDict turns a decoded JSON object into a{sv}.
func jsonDict(obj map[string]any) map[string]godbus.Variant {
	out := make(map[string]godbus.Variant, len(obj))
	for k, v := range obj {
		if v == nil {
			continue
		}
		out[busString(k)] = godbus.MakeVariant(jsonValue(v))
	}
	return out
}

// jsonValue turns one decoded JSON value into the Go value whose D-Bus
// type the table above gives. Equal D-Bus types always come from equal Go
// types, which lets arrays be typed.
func jsonValue(v any) any {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return busString(v)
	case bool:
		return v
	case json.Number:
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return n
		}
		if n, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return n
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		return jsonDict(v)
	case []any:
		elems := make([]any, len(v))
		same := len(v) > 0
		for i, e := range v {
			elems[i] = jsonValue(e)
			if same && i > 0 && reflect.TypeOf(elems[i]) != reflect.TypeOf(elems[0]) {
				same = false
			}
		}
		if !same {
			out := make([]godbus.Variant, len(elems))
			for i, e := range elems {
				out[i] = godbus.MakeVariant(e)
			}
			return out
		}
		out := reflect.MakeSlice(reflect.SliceOf(reflect.TypeOf(elems[0])), len(elems), len(elems))
		for i, e := range elems {
			out.Index(i).Set(reflect.ValueOf(e))
		}
		return out.Interface()
	}
	// decodeJSON yields no other type.
	return busString(fmt.Sprint(v))
}

// replyStrings turns a job's reply into an a{ss} dictionary, for a person
// to read: strings as they are, numbers and booleans as their JSON text,
// nested objects flattened with dotted keys ("Platform.Name"), arrays as
// their JSON text; nulls are left out.
func replyStrings(v any) (map[string]string, error) {
	j, err := decodeJSON(v)
	if err != nil {
		return nil, err
	}
	obj, ok := j.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("reply of type %T is not an object", v)
	}
	out := make(map[string]string)
	flatten(out, "", obj)
	return out, nil
}

func flatten(out map[string]string, prefix string, obj map[string]any) {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := busString(prefix + k)
		switch v := obj[k].(type) {
		case nil:
		case string:
			out[key] = busString(v)
		case map[string]any:
			flatten(out, key+".", v)
		case json.Number:
			out[key] = string(v)
		case bool:
			out[key] = strconv.FormatBool(v)
		default:
			b, _ := json.Marshal(v)
			out[key] = busString(string(b))
		}
	}
}

// lookupJSON returns the value at a dotted path ("Ctr.ExecDriver") of a
// decoded JSON object, and whether it is there.
func lookupJSON(obj map[string]any, path string) (any, bool) {
	var cur any = obj
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok || cur == nil {
			return nil, false
		}
	}
	return cur, true
}

// versionStrings is replyStrings for the version job's reply, without
// the JSON round trip (a D-Bus Version call spent most of its time in
// ctrd there): the same keys and values, which TestVersionStrings checks
// against replyStrings.
func versionStrings(v *system.VersionResponse) (map[string]string, error) {
	out := make(map[string]string, 12)
	set := func(k, val string, omitEmpty bool) {
		if val != "" || !omitEmpty {
			out[k] = busString(val)
		}
	}
	set("Platform.Name", v.Platform.Name, false)
	set("Version", v.Version, false)
	set("ApiVersion", v.APIVersion, false)
	set("MinAPIVersion", v.MinAPIVersion, true)
	set("Os", v.Os, false)
	set("Arch", v.Arch, false)
	set("GitCommit", v.GitCommit, true)
	set("GoVersion", v.GoVersion, true)
	set("KernelVersion", v.KernelVersion, true)
	set("BuildTime", v.BuildTime, true)
	if v.Experimental {
		out["Experimental"] = "true"
	}
	if len(v.Components) > 0 {
		// As flatten writes an array: JSON with each object's keys sorted.
		cs := make([]map[string]any, len(v.Components))
		for i, c := range v.Components {
			m := map[string]any{"Name": busString(c.Name), "Version": busString(c.Version)}
			if len(c.Details) > 0 {
				m["Details"] = busStringMap(c.Details)
			}
			cs[i] = m
		}
		b, err := json.Marshal(cs)
		if err != nil {
			return nil, err
		}
		out["Components"] = busString(string(b))
	}
	return out, nil
}
