package events

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"

	"example.org/ctr/internal/errdefs"
)

// Filter selects events, as the Docker Engine API's `filters` parameter
// does: every key given must match (AND), any of a key's values may match
// (OR). The zero Filter matches everything.
type Filter map[string][]string

// filterKeys are the keys Docker accepts for events, and what ctr does with
// each.
var filterKeys = map[string]func(m events.Message, v string) bool{
	"type":  func(m events.Message, v string) bool { return string(m.Type) == v },
	"event": matchAction,
	"container": func(m events.Message, v string) bool {
		return m.Type == events.ContainerEventType && matchActor(m, v)
	},
	"image": func(m events.Message, v string) bool {
		if m.Type == events.ImageEventType {
			return matchActor(m, v)
		}
		return m.Actor.Attributes["image"] == v
	},
	"network": func(m events.Message, v string) bool {
		return m.Type == events.NetworkEventType && matchActor(m, v)
	},
	"volume": func(m events.Message, v string) bool {
		return m.Type == events.VolumeEventType && matchActor(m, v)
	},
	"daemon": func(m events.Message, v string) bool {
		return m.Type == events.DaemonEventType && matchActor(m, v)
	},
	"scope": func(m events.Message, v string) bool { return m.Scope == v },
	"label": func(m events.Message, v string) bool {
		k, want, hasValue := strings.Cut(v, "=")
		got, ok := m.Actor.Attributes[k]
		return ok && (!hasValue || got == want)
	},
}

// matchAction matches the event's action; "health_status" matches every
// health_status action, as in Docker.
func matchAction(m events.Message, v string) bool {
	a := string(m.Action)
	if a == v {
		return true
	}
	// "exec_start: sh -c ..." and "health_status: healthy" carry a detail
	// after a colon; the filter names only the action.
	name, _, ok := strings.Cut(a, ":")
	return ok && name == v
}

// matchActor matches an actor's full id, an id prefix of 12 or more
// characters, or its name attribute.
func matchActor(m events.Message, v string) bool {
	id := m.Actor.ID
	if id == v || m.Actor.Attributes["name"] == v {
		return true
	}
	return len(v) >= 12 && strings.HasPrefix(id, v)
}

// Match reports whether m passes the filter.
func (f Filter) Match(m events.Message) bool {
	for key, values := range f {
		if len(values) == 0 {
			continue
		}
		match := filterKeys[key]
		ok := false
		for _, v := range values {
			if match(m, v) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// ParseFilter decodes the `filters` query parameter: a JSON object mapping
// each key to a list of values, or (the older form Docker still accepts) to
// an object whose keys are the values. An empty string is the zero Filter.
// An unknown key is an InvalidArgument error, like Docker's
// "invalid filter 'foo'".
func ParseFilter(s string) (Filter, error) {
	return parseFilter(s, func(k string) bool { _, ok := filterKeys[k]; return ok })
}

// ParseFilterKeys decodes a `filters` parameter as ParseFilter does, for
// another list of keys (the volumes' or the prunes' filters, say).
func ParseFilterKeys(s string, keys ...string) (Filter, error) {
	return parseFilter(s, func(k string) bool { return slices.Contains(keys, k) })
}

func parseFilter(s string, known func(string) bool) (Filter, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, errdefs.InvalidArgument("invalid filters %q: %v", s, err)
	}
	f := Filter{}
	for k, v := range raw {
		if !known(k) {
			return nil, errdefs.InvalidArgument("invalid filter '%s'", k)
		}
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			var set map[string]bool
			if err2 := json.Unmarshal(v, &set); err2 != nil {
				return nil, errdefs.InvalidArgument("invalid filter '%s': want a list of strings", k)
			}
			for val, on := range set {
				if on {
					list = append(list, val)
				}
			}
		}
		f[k] = list
	}
	return f, nil
}

// ParseTime reads a `since` or `until` value as Docker's API does: Unix
// seconds with an optional fraction ("1700000000.5"), an RFC 3339 time, or
// a Go duration counted back from now ("10m"). Empty is the zero time.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	// "0" is the epoch, as for docker (all the history), not a duration
	// of nothing.
	if d, err := time.ParseDuration(s); err == nil && s != "0" {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, errdefs.InvalidArgument("invalid time %q: want Unix seconds, RFC 3339 or a duration", s)
	}
	var nsec int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		f, err := strconv.ParseInt(frac, 10, 64)
		if err != nil {
			return time.Time{}, errdefs.InvalidArgument("invalid time %q: bad fraction", s)
		}
		nsec = f * int64(math.Pow10(9-len(frac)))
	}
	return time.Unix(n, nsec), nil
}
