package events

import (
	"strings"
	"time"

	"example.org/ctr/internal/errdefs"
)

// PruneFilter is the filters of the prune routes (containers, images):
// until (a time or a duration before now), label and label! ("key",
// "key=value"), and the route's own keys in Other.
type PruneFilter struct {
	Until     time.Time
	Labels    []string
	NotLabels []string
	Other     Filter
}

// ParsePruneFilter reads a prune's filters parameter; extra are the keys
// the route takes besides until, label and label!.
func ParsePruneFilter(s string, now time.Time, extra ...string) (PruneFilter, error) {
	f, err := ParseFilterKeys(s, append([]string{"until", "label", "label!"}, extra...)...)
	if err != nil {
		return PruneFilter{}, err
	}
	p := PruneFilter{Labels: f["label"], NotLabels: f["label!"], Other: f}
	if u := f["until"]; len(u) > 0 {
		if len(u) > 1 {
			return p, errdefs.InvalidArgument("more than one until filter specified")
		}
		if p.Until, err = ParseTime(u[0], now); err != nil {
			return p, errdefs.InvalidArgument("invalid until filter %q: %v", u[0], err)
		}
	}
	return p, nil
}

// Match reports whether an object created at created with labels passes
// the filter.
func (p *PruneFilter) Match(created time.Time, labels map[string]string) bool {
	if !p.Until.IsZero() && !created.Before(p.Until) {
		return false
	}
	for _, l := range p.Labels {
		if !LabelMatch(labels, l) {
			return false
		}
	}
	for _, l := range p.NotLabels {
		if LabelMatch(labels, l) {
			return false
		}
	}
	return true
}

// LabelMatch reads a label filter, "key" or "key=value", against labels.
func LabelMatch(labels map[string]string, f string) bool {
	k, v, hasV := strings.Cut(f, "=")
	have, ok := labels[k]
	return ok && (!hasV || have == v)
}
