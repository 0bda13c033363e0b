package graph_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// fake is a driver that only has a name; Select never calls its methods.
type fake struct{ name string }

func (f fake) Name() string                                { return f.name }
func (fake) Create(context.Context, string, string) error  { return nil }
func (fake) Remove(context.Context, string) error          { return nil }
func (fake) Exists(context.Context, string) bool           { return false }
func (fake) List(context.Context) ([]string, error)        { return nil, nil }
func (fake) Mount(context.Context, string) (string, error) { return "", nil }
func (fake) Unmount(context.Context, string) error         { return nil }
func (fake) Size(context.Context, string) (int64, error)   { return 0, nil }
func (fake) Status() [][2]string                           { return nil }
func (fake) ApplyDiff(context.Context, string, io.Reader, ...graph.ApplyOpt) (layertar.Stats, error) {
	return layertar.Stats{}, nil
}

func ok(name string) graph.Registration {
	return graph.Registration{Name: name, New: func(string, map[string]string) (graph.Driver, error) {
		return fake{name}, nil
	}}
}

func unsupported(name, why string) graph.Registration {
	return graph.Registration{Name: name, New: func(string, map[string]string) (graph.Driver, error) {
		return nil, fmt.Errorf("%s: %w", why, graph.ErrNotSupported)
	}}
}

func failing(name string, err error) graph.Registration {
	return graph.Registration{Name: name, New: func(string, map[string]string) (graph.Driver, error) {
		return nil, err
	}}
}

func TestSelect(t *testing.T) {
	badOpt := errdefs.InvalidArgument("unknown --storage-opt x")
	cases := []struct {
		name     string
		want     string
		drivers  []graph.Registration
		chosen   string
		whyHas   string
		errClass errdefs.Class
	}{
		{"first works", "", []graph.Registration{ok("overlay"), ok("vfs")}, "overlay", "first that works", 0},
		{"fallback", "", []graph.Registration{unsupported("overlay", "backing fs is overlayfs"), ok("vfs")}, "vfs", "backing fs is overlayfs", 0},
		{"named", "vfs", []graph.Registration{ok("overlay"), ok("vfs")}, "vfs", "configuration", 0},
		{"named unsupported is fatal", "overlay", []graph.Registration{unsupported("overlay", "no"), ok("vfs")}, "", "", errdefs.NotImplementedClass},
		{"unknown name", "aufs", []graph.Registration{ok("overlay"), ok("vfs")}, "", "", errdefs.InvalidArgumentClass},
		{"bad option stops the fallback", "", []graph.Registration{failing("overlay", badOpt), ok("vfs")}, "", "", errdefs.InvalidArgumentClass},
		{"none works", "", []graph.Registration{unsupported("overlay", "a"), unsupported("vfs", "b")}, "", "", errdefs.NotImplementedClass},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, why, err := graph.Select(c.want, "/nonexistent", nil, c.drivers)
			if c.errClass != 0 {
				if errdefs.ClassOf(err) != c.errClass {
					t.Fatalf("error %v (class %v), want %v", err, errdefs.ClassOf(err), c.errClass)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Name() != c.chosen || !strings.Contains(why, c.whyHas) {
				t.Fatalf("chose %s because %q; want %s because ...%s...", d.Name(), why, c.chosen, c.whyHas)
			}
		})
	}
	_, _, err := graph.Select("", "/x", nil, []graph.Registration{unsupported("overlay", "a"), unsupported("vfs", "b")})
	if !errors.Is(err, graph.ErrNotSupported) {
		t.Errorf("no driver: %v does not wrap ErrNotSupported", err)
	}
	_, _, err = graph.Select("aufs", "/x", nil, []graph.Registration{ok("overlay"), ok("vfs")})
	if err == nil || !strings.Contains(err.Error(), "overlay, vfs") {
		t.Errorf("unknown driver error %v does not list the known ones", err)
	}
}

func TestCheckOptions(t *testing.T) {
	if err := graph.CheckOptions("vfs", map[string]string{"vfs.mount": "bind"}, "vfs.mount"); err != nil {
		t.Fatal(err)
	}
	err := graph.CheckOptions("vfs", map[string]string{"vfs.mount": "x", "overlay.size": "1G", "dm.basesize": "2"}, "vfs.mount")
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("error %v, want InvalidArgument", err)
	}
	for _, part := range []string{"dm.basesize, overlay.size", "known: vfs.mount"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q lacks %q", err, part)
		}
	}
	err = graph.CheckOptions("none", map[string]string{"a": "b"})
	if err == nil || !strings.Contains(err.Error(), "known: none") {
		t.Errorf("error %v", err)
	}
}

func TestParseOptions(t *testing.T) {
	m, err := graph.ParseOptions([]string{"overlay.mountopt=index=off,volatile", " VFS.Mount = path"})
	if err != nil {
		t.Fatal(err)
	}
	if m["overlay.mountopt"] != "index=off,volatile" || m["vfs.mount"] != "path" || len(m) != 2 {
		t.Errorf("parsed %v", m)
	}
	for _, bad := range [][]string{{"novalue"}, {"=x"}, {"a=1", "a=2"}} {
		if _, err := graph.ParseOptions(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v, want InvalidArgument", bad, err)
		}
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"a", "sha256-0123abcdef", "c1.init", "Layer_2", strings.Repeat("f", 128)} {
		if err := graph.ValidateID(id); err != nil {
			t.Errorf("%q: %v", id, err)
		}
	}
	for _, id := range []string{"", ".", "..", "../x", "a/b", "-a", ".hidden", "a b", "a\x00", strings.Repeat("f", 129), "é"} {
		if err := graph.ValidateID(id); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v, want InvalidArgument", id, err)
		}
	}
}
