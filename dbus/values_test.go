package dbus

import (
	"encoding/binary"
	"os"
	"slices"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

func TestBusString(t *testing.T) {
	for in, want := range map[string]string{
		"plain":       "plain",
		"été":         "été",
		"a\xffb":      "a\uFFFDb",
		"nul\x00here": "nul\uFFFDhere",
		"":            "",
	} {
		if got := busString(in); got != want {
			t.Errorf("busString(%q) = %q, want %q", in, got, want)
		}
	}
	if m := busStringMap(nil); m == nil || len(m) != 0 {
		t.Errorf("busStringMap(nil) = %#v", m)
	}
}

type sample struct {
	Name     string            `json:"name"`
	Count    int               `json:"count"`
	Big      uint64            `json:"big"`
	Ratio    float64           `json:"ratio"`
	On       bool              `json:"on"`
	Tags     []string          `json:"tags"`
	Empty    []string          `json:"empty"`
	Mixed    []any             `json:"mixed"`
	Labels   map[string]string `json:"labels"`
	Nested   *sample           `json:"nested,omitempty"`
	Nil      *sample           `json:"nil"`
	When     time.Time         `json:"when"`
	Skipped  string            `json:"-"`
	Pairs    [][2]string       `json:"pairs"`
	NullElem []*int            `json:"null_elem"`
}

func TestReplyDict(t *testing.T) {
	when := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	v := sample{
		Name: "x\xff", Count: -3, Big: 1 << 63, Ratio: 0.5, On: true, Tags: []string{"a", "b"}, Empty: []string{},
		Mixed: []any{"s", 1}, Labels: map[string]string{"k": "v"}, Nested: &sample{Name: "inner"}, When: when,
		Pairs: [][2]string{{"a", "b"}}, NullElem: []*int{nil},
	}
	d, err := replyDict(v)
	if err != nil {
		t.Fatal(err)
	}
	sig := func(k string) string { return d[k].Signature().String() }
	for k, want := range map[string]string{
		"name": "s", "count": "x", "big": "t", "ratio": "d", "on": "b", "tags": "as", "empty": "av",
		"mixed": "av", "labels": "a{sv}", "nested": "a{sv}", "when": "s", "pairs": "aas", "null_elem": "as",
	} {
		if got := sig(k); got != want {
			t.Errorf("%s: type %q, want %q", k, got, want)
		}
	}
	if _, ok := d["nil"]; ok {
		t.Error("a null field is in the dictionary")
	}
	if _, ok := d["Skipped"]; ok {
		t.Error(`a json:"-" field is in the dictionary`)
	}
	if d["name"].Value() != "x\uFFFD" || d["count"].Value() != int64(-3) || d["big"].Value() != uint64(1<<63) ||
		d["when"].Value() != "2025-01-02T03:04:05Z" || !slices.Equal(d["tags"].Value().([]string), []string{"a", "b"}) {
		t.Errorf("values %v", d)
	}
	// Every value can be sent: godbus encodes the whole dictionary.
	msg := &godbus.Message{Type: godbus.TypeMethodReply, Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldReplySerial: godbus.MakeVariant(uint32(1)),
		godbus.FieldSignature:   godbus.MakeVariant(godbus.SignatureOf(d)),
	}, Body: []any{d}}
	if err := msg.EncodeTo(devNull{}, binary.LittleEndian); err != nil {
		t.Errorf("encode: %v", err)
	}
	if _, err := replyDict([]int{1}); err == nil {
		t.Error("a reply that is not an object passed")
	}
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

func TestReplyStrings(t *testing.T) {
	m, err := replyStrings(sample{Name: "n", Count: 2, On: true, Tags: []string{"a"}, Nested: &sample{Name: "in", Labels: map[string]string{"k": "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"name": "n", "count": "2", "on": "true", "tags": `["a"]`, "nested.name": "in", "nested.labels.k": "v", "empty": "null",
	} {
		got, ok := m[k]
		if k == "empty" {
			if ok {
				t.Errorf("a null is in the strings: %q", got)
			}
			continue
		}
		if got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestReadProcStatus(t *testing.T) {
	st, err := readProcStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.uid != os.Geteuid() || st.gid != os.Getegid() {
		t.Errorf("uid %d gid %d, want %d %d", st.uid, st.gid, os.Geteuid(), os.Getegid())
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if !slices.Contains(st.groups, uint32(g)) {
			t.Errorf("group %d missing from %v", g, st.groups)
		}
	}
	if !slices.Contains(st.groups, uint32(os.Getegid())) {
		t.Errorf("the primary group is missing from %v", st.groups)
	}
	if _, err := readProcStatus(-1); err == nil {
		t.Error("a process that does not exist has a status")
	}
}
