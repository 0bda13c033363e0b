// Package filters decodes the Docker Engine API's filters parameter:
// {"key":["value",…]}, or the older {"key":{"value":true}}.
package filters

import (
	"encoding/json"
	"slices"
	"strings"

	"example.org/ctr/internal/errdefs"
)

// Parse decodes s, allowing only the given keys; an empty s is no filter.
// A bad document or an unknown key is an InvalidArgument error in
// docker's words.
func Parse(s string, keys []string) (map[string][]string, error) {
	out := map[string][]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, errdefs.InvalidArgument("invalid filters %q: %v", s, err)
	}
	for k, v := range raw {
		if !slices.Contains(keys, k) {
			return nil, errdefs.InvalidArgument("invalid filter '%s'", k)
		}
		var list []string
		if err := json.Unmarshal(v, &list); err != nil {
			var set map[string]bool
			if err := json.Unmarshal(v, &set); err != nil {
				return nil, errdefs.InvalidArgument("invalid filter '%s': want a list of strings", k)
			}
			for x, on := range set {
				if on {
					list = append(list, x)
				}
			}
		}
		slices.Sort(list)
		out[k] = list
	}
	return out, nil
}

// Label reports whether labels match every "key" or "key=value" of want.
func Label(labels map[string]string, want []string) bool {
	for _, w := range want {
		k, v, hasV := strings.Cut(w, "=")
		got, ok := labels[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return true
}
