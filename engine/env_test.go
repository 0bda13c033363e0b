package engine

import (
	"testing"
	"time"

	"example.org/ctr/internal/errdefs"
)

type sampleRequest struct {
	Name    string            `env:"name"`
	All     bool              `json:"all"`
	Limit   int               `env:"limit"`
	Size    uint64            `env:"size"`
	Ratio   float64           `env:"ratio"`
	Timeout time.Duration     `env:"timeout"`
	Labels  map[string]string `env:"labels"`
	Cmd     []string          `env:"cmd"`
	Skip    string            `env:"-"`
	Plain   string
}

func TestEnvDecode(t *testing.T) {
	var e Env
	e.Set("name", "web")
	e.Set("all", "true")
	e.Set("limit", "-3")
	e.Set("size", "42")
	e.Set("ratio", "0.5")
	e.Set("timeout", "1.5s")
	e.Set("labels", `{"a":"b"}`)
	if err := e.SetJSON("cmd", []string{"echo", "hi there"}); err != nil {
		t.Fatal(err)
	}
	e.Set("Plain", "x=y")
	e.Set("name", "db") // replaces
	var r sampleRequest
	if err := e.Decode(&r); err != nil {
		t.Fatal(err)
	}
	if r.Name != "db" || !r.All || r.Limit != -3 || r.Size != 42 || r.Ratio != 0.5 ||
		r.Timeout != 1500*time.Millisecond || r.Labels["a"] != "b" ||
		len(r.Cmd) != 2 || r.Cmd[1] != "hi there" || r.Plain != "x=y" {
		t.Errorf("decoded %+v", r)
	}
	if v, ok := e.Get("Plain"); !ok || v != "x=y" {
		t.Errorf("Get: %q %v", v, ok)
	}
}

func TestEnvDecodeErrors(t *testing.T) {
	cases := map[string]Env{
		"unknown key":    {"nosuch=1"},
		"skipped key":    {"Skip=1"},
		"not key=value":  {"novalue"},
		"empty key":      {"=x"},
		"bad bool":       {"all=maybe"},
		"bad int":        {"limit=ten"},
		"int overflow":   {"size=-1"},
		"bad duration":   {"timeout=soon"},
		"bad json":       {"labels={"},
		"json wrong":     {`cmd={"a":1}`},
		"duplicate keys": {"name=a", "name=b"},
	}
	for name, e := range cases {
		var r sampleRequest
		err := e.Decode(&r)
		if !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: got %v, want InvalidArgument", name, err)
		}
	}
	var notStruct int
	if err := (Env{}).Decode(&notStruct); !errdefs.IsInvalidArgument(err) {
		t.Errorf("decode into an int: %v", err)
	}
}

func TestEnvMapAndKeys(t *testing.T) {
	e := EnvFromMap(map[string]string{"b": "2", "a": "1"})
	if len(e) != 2 || e[0] != "a=1" || e[1] != "b=2" {
		t.Errorf("EnvFromMap: %v", e)
	}
	if m := e.Map(); m["a"] != "1" || m["b"] != "2" {
		t.Errorf("Map: %v", m)
	}
	keys := EnvKeys(sampleRequest{})
	want := []string{"Plain", "all", "cmd", "labels", "limit", "name", "ratio", "size", "timeout"}
	if len(keys) != len(want) {
		t.Fatalf("EnvKeys %v", keys)
	}
	for i := range want {
		if keys[i] != want[i] {
			t.Errorf("EnvKeys %v, want %v", keys, want)
			break
		}
	}
}
