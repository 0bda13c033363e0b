// Package jsonwarm readies encoding/json for a type ahead of its first
// real use: a process that will decode a value of a known type after a
// wait (a config that comes once the caller has it) encodes and decodes a
// made-up value of that type during the wait, so that the decoder's code
// is paged in and its per-type caches are filled when the real value
// comes. The first decode of a type in a fresh process costs several times
// a warm one.
package jsonwarm

import (
	"encoding/json"
	"reflect"
)

// Warm encodes and decodes a value of v's type (v is a pointer) whose every
// pointer, slice and map holds one element, to some depth. It leaves v as
// it was.
func Warm(v any) {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return
	}
	sample := reflect.New(t.Elem())
	Fill(sample.Elem())
	b, err := json.Marshal(sample.Interface())
	if err != nil {
		return
	}
	_ = json.Unmarshal(b, reflect.New(t.Elem()).Interface())
}

// maxDepth bounds Fill's descent (a type may contain itself).
const maxDepth = 6

// Fill gives v (settable) a value in each pointer, slice and map it holds,
// to depth 6. Byte slices stay empty: they are encoded as base64 or in a
// format of their own, with no types within.
func Fill(v reflect.Value) { fill(v, 0) }

func fill(v reflect.Value, depth int) {
	if depth > maxDepth {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fill(v.Elem(), depth+1)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Field(i); f.CanSet() {
				fill(f, depth+1)
			}
		}
	}
}
