package engine

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"example.org/ctr/internal/errdefs"
)

// Env is a job's named parameters, in order, as KEY=VALUE strings (the
// seed's shape, so that every transport can carry it: HTTP query and JSON,
// D-Bus a{ss}, CLI flags). Handlers do not read it key by key: they decode
// it once into a typed request with Decode.
type Env []string

// Set sets key to value, replacing an earlier value.
func (e *Env) Set(key, value string) {
	prefix := key + "="
	for i, kv := range *e {
		if strings.HasPrefix(kv, prefix) {
			(*e)[i] = prefix + value
			return
		}
	}
	*e = append(*e, prefix+value)
}

// SetJSON sets key to the JSON encoding of value.
func (e *Env) SetJSON(key string, value any) error {
	b, err := json.Marshal(value)
	if err != nil {
		return errdefs.InvalidArgument("env %s: %v", key, err)
	}
	e.Set(key, string(b))
	return nil
}

// Get returns the value of key and whether it is set.
func (e Env) Get(key string) (string, bool) {
	prefix := key + "="
	for _, kv := range e {
		if strings.HasPrefix(kv, prefix) {
			return kv[len(prefix):], true
		}
	}
	return "", false
}

// Map returns the env as a map; a later duplicate key wins.
func (e Env) Map() map[string]string {
	m := make(map[string]string, len(e))
	for _, kv := range e {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// EnvFromMap builds an Env from m, sorted by key.
func EnvFromMap(m map[string]string) Env {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e := make(Env, 0, len(m))
	for _, k := range keys {
		e = append(e, k+"="+m[k])
	}
	return e
}

// Decode fills the struct v points to from the env. A field's key is its
// `env:"name"` tag, else its `json` tag name, else its Go name; `env:"-"`
// skips it. Values are read by the field's type: strings as they are; bools,
// integers, floats and durations (time.Duration, as "1.5s") with strconv
// and time rules; anything else (slices, maps, structs) as JSON.
//
// Every error is an InvalidArgument that names the key: an entry without
// "=", a key the request does not have, a duplicate key, or a value that
// does not parse.
func (e Env) Decode(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return errdefs.InvalidArgument("decode env: want a pointer to a struct, got %T", v)
	}
	fields := envFields(rv.Elem().Type())
	seen := make(map[string]bool, len(e))
	for _, kv := range e {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return errdefs.InvalidArgument("env entry %q is not KEY=VALUE", kv)
		}
		idx, ok := fields[k]
		if !ok {
			return errdefs.InvalidArgument("unknown parameter %q", k)
		}
		if seen[k] {
			return errdefs.InvalidArgument("parameter %q given twice", k)
		}
		seen[k] = true
		if err := setField(rv.Elem().FieldByIndex(idx), val); err != nil {
			return errdefs.InvalidArgument("parameter %q: %v", k, err)
		}
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func setField(f reflect.Value, val string) error {
	if f.Type() == durationType {
		d, err := time.ParseDuration(val)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(val)
	case reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(val, 10, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(val, 10, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(val, f.Type().Bits())
		if err != nil {
			return err
		}
		f.SetFloat(n)
	default:
		dec := json.NewDecoder(strings.NewReader(val))
		dec.DisallowUnknownFields()
		if err := dec.Decode(f.Addr().Interface()); err != nil {
			return err
		}
	}
	return nil
}

// envFields maps each env key of struct type t to its field index.
func envFields(t reflect.Type) map[string][]int {
	out := make(map[string][]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name := sf.Name
		if tag, ok := sf.Tag.Lookup("env"); ok {
			if tag == "-" {
				continue
			}
			name = tag
		} else if tag, ok := sf.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		out[name] = sf.Index
	}
	return out
}

// EnvKeys returns the env keys a request struct accepts, in field order;
// transports use it for introspection and help.
func EnvKeys(req any) []string {
	if req == nil {
		return nil
	}
	t := reflect.TypeOf(req)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	m := envFields(t)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
