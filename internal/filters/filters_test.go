package filters

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	got, err := Parse(`{"name":["b","a"],"label":{"x=1":true,"y":false}}`, []string{"name", "label"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"name": {"a", "b"}, "label": {"x=1"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse = %v, want %v", got, want)
	}
	if _, err := Parse(`{"nope":["x"]}`, []string{"name"}); err == nil {
		t.Fatal("an unknown key was accepted")
	}
	if _, err := Parse(`{`, []string{"name"}); err == nil {
		t.Fatal("bad JSON was accepted")
	}
}

func TestLabel(t *testing.T) {
	l := map[string]string{"a": "1", "b": ""}
	for _, c := range []struct {
		want []string
		ok   bool
	}{{nil, true}, {[]string{"a"}, true}, {[]string{"a=1", "b"}, true}, {[]string{"a=2"}, false}, {[]string{"c"}, false}} {
		if got := Label(l, c.want); got != c.ok {
			t.Errorf("Label(%v) = %v, want %v", c.want, got, c.ok)
		}
	}
}
