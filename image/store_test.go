package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/image/archive"
	"example.org/ctr/internal/errdefs"
)

// twoImages returns a base image and a child sharing its layer.
func twoImages(t testing.TB) (base, child testImage) {
	l1 := layerTar(t, fsEntry{Name: "etc/", Dir: true}, fsEntry{Name: "etc/os-release", Body: "base\n"}, fsEntry{Name: "bin/", Dir: true}, fsEntry{Name: "bin/sh", Body: "#!shell", Mode: 0o755})
	l2 := layerTar(t, fsEntry{Name: "etc/", Dir: true}, fsEntry{Name: "etc/os-release", Body: "child\n"}, fsEntry{Name: "etc/.wh.gone", Body: ""}, fsEntry{Name: "app", Linkname: "/bin/sh"})
	base = testImage{Tags: []string{"base:1"}, Config: configFor(t, "base", l1), Layers: [][]byte{l1}}
	child = testImage{Tags: []string{"example.org/team/child:v2", "child"}, Config: configFor(t, "child", l1, l2), Layers: [][]byte{l1, l2}}
	return base, child
}

func load(t testing.TB, s *Store, b []byte) []Loaded {
	t.Helper()
	res, err := s.Load(context.Background(), bytes.NewReader(b), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return res
}

func TestLoadDockerArchive(t *testing.T) {
	for _, metaFirst := range []bool{false, true} {
		name := "manifest-last"
		if metaFirst {
			name = "manifest-first"
		}
		t.Run(name, func(t *testing.T) {
			s, _ := newTestStore(t)
			base, child := twoImages(t)
			res := load(t, s, dockerArchive(t, metaFirst, base, child))
			if len(res) != 2 || !res[0].New || !res[1].New {
				t.Fatalf("Load = %+v", res)
			}
			if res[1].ID != digest.FromBytes(child.Config) {
				t.Errorf("image id %s, want the config digest", res[1].ID)
			}
			if got := strings.Join(res[1].Tags, ","); got != "example.org/team/child:v2,docker.io/library/child:latest" {
				t.Errorf("tags %s", got)
			}
			if got := layerFile(t, s, "child", "etc/os-release"); got != "child\n" {
				t.Errorf("child's os-release = %q", got)
			}
			if got := layerFile(t, s, "base:1", "etc/os-release"); got != "base\n" {
				t.Errorf("base's os-release = %q", got)
			}
			imgs, err := s.Images(context.Background())
			if err != nil || len(imgs) != 2 {
				t.Fatalf("Images = %v, %v", imgs, err)
			}
			ids, _ := s.driver.List(context.Background())
			if len(ids) != 2 {
				t.Errorf("the shared layer is not shared: %d driver layers", len(ids))
			}
			checkConsistent(t, s)
			// Loading again changes nothing.
			again := load(t, s, dockerArchive(t, metaFirst, base, child))
			if again[0].New || again[1].New {
				t.Errorf("second load made new images: %+v", again)
			}
			checkConsistent(t, s)
		})
	}
}

func TestLoadOCILayout(t *testing.T) {
	s, _ := newTestStore(t)
	base, child := twoImages(t)
	for _, img := range []*testImage{&base, &child} {
		for i := range img.Layers {
			img.Layers[i] = gzipped(t, img.Layers[i])
		}
	}
	child.Tags = []string{"docker.io/library/child:oci"}
	base.Tags = []string{"latest"} // a bare tag names no repository
	res := load(t, s, ociArchive(t, base, child))
	if len(res) != 2 {
		t.Fatalf("Load = %+v", res)
	}
	if len(res[0].Tags) != 0 || len(res[1].Tags) != 1 || res[1].Tags[0] != "docker.io/library/child:oci" {
		t.Errorf("tags: %v and %v", res[0].Tags, res[1].Tags)
	}
	if got := layerFile(t, s, "child:oci", "etc/os-release"); got != "child\n" {
		t.Errorf("os-release = %q", got)
	}
	checkConsistent(t, s)
}

func TestLoadCompressedArchiveAndZstdLayers(t *testing.T) {
	s, _ := newTestStore(t)
	l := layerTar(t, fsEntry{Name: "hello", Body: "zstd"})
	img := testImage{Tags: []string{"z:1"}, Config: configFor(t, "z", l), Layers: [][]byte{zstded(t, l)}}
	load(t, s, gzipped(t, dockerArchive(t, false, img)))
	if got := layerFile(t, s, "z:1", "hello"); got != "zstd" {
		t.Errorf("hello = %q", got)
	}
	checkConsistent(t, s)
}

// TestSaveRoundTrip saves images, removes them, loads the archive again:
// the ids are the same and the layer tars are the bytes first loaded.
func TestSaveRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	base, child := twoImages(t)
	load(t, s, dockerArchive(t, false, base, child))
	var out bytes.Buffer
	ids, err := s.Save(ctx, []string{"child", "base:1"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 {
		t.Fatalf("Save = %v", ids)
	}
	// The archive's layers are the original tars, by digest.
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(out.Bytes()))
	var order []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
		order = append(order, h.Name)
	}
	if order[0] != "oci-layout" || order[1] != "index.json" || order[2] != "manifest.json" {
		t.Errorf("metadata does not come first: %v", order[:3])
	}
	for _, l := range child.Layers {
		if got := files[archive.BlobPath(digest.FromBytes(l))]; !bytes.Equal(got, l) {
			t.Errorf("layer %s differs after save (%d bytes, want %d)", digest.FromBytes(l), len(got), len(l))
		}
	}
	ms, err := archive.ParseDockerManifest(files["manifest.json"])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ms[0].RepoTags, ",") != "child:latest" || strings.Join(ms[1].RepoTags, ",") != "base:1" {
		t.Errorf("manifest tags %v, %v", ms[0].RepoTags, ms[1].RepoTags)
	}
	for _, n := range []string{"child", "example.org/team/child:v2", "base:1"} {
		if _, err := s.Delete(ctx, n, DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if imgs, _ := s.Images(ctx); len(imgs) != 0 {
		t.Fatalf("images left: %v", imgs)
	}
	checkConsistent(t, s)
	res := load(t, s, out.Bytes())
	if res[0].ID != ids[0] || res[1].ID != ids[1] {
		t.Errorf("reloaded ids %s %s, want %v", res[0].ID, res[1].ID, ids)
	}
	if got := layerFile(t, s, "child", "etc/os-release"); got != "child\n" {
		t.Errorf("os-release = %q", got)
	}
	checkConsistent(t, s)
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	rootfs := layerTar(t, fsEntry{Name: "bin/", Dir: true}, fsEntry{Name: "bin/sh", Body: "sh", Mode: 0o755})
	ref, _ := ParseTag("imported:v1")
	res, err := s.Import(ctx, bytes.NewReader(gzipped(t, rootfs)), ImportOptions{Tag: ref, Changes: []string{
		`CMD ["/bin/sh"]`, `ENV A=b C="d e"`, `WORKDIR /srv`, `ENTRYPOINT /bin/echo hi`,
		`USER nobody`, `LABEL x=y`, `EXPOSE 80 53/udp`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Config(res.ID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := archive.ParseConfig(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.RootFS.DiffIDs[0] != digest.FromBytes(rootfs) {
		t.Errorf("diff id %s, want the digest of the plain tar", c.RootFS.DiffIDs[0])
	}
	got, _ := json.Marshal(c.Config)
	for _, want := range []string{`"Cmd":["/bin/sh"]`, `"Env":["A=b","C=d e"]`, `"WorkingDir":"/srv"`,
		`"Entrypoint":["/bin/sh","-c","/bin/echo hi"]`, `"User":"nobody"`, `"Labels":{"x":"y"}`, `"53/udp":{}`, `"80/tcp":{}`} {
		if !strings.Contains(string(got), want) {
			t.Errorf("config %s lacks %s", got, want)
		}
	}
	if got := layerFile(t, s, "imported:v1", "bin/sh"); got != "sh" {
		t.Errorf("bin/sh = %q", got)
	}
	// The same tar again gives the same layer, not a second copy.
	if _, err := s.Import(ctx, bytes.NewReader(rootfs), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.driver.List(ctx); len(ids) != 1 {
		t.Errorf("%d driver layers for one content", len(ids))
	}
	checkConsistent(t, s)
	// A bad change or a broken tar leaves nothing.
	if _, err := s.Import(ctx, bytes.NewReader(rootfs), ImportOptions{Changes: []string{"RUN rm -rf /"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("RUN change: %v, want InvalidArgument", err)
	}
	if _, err := s.Import(ctx, bytes.NewReader(rootfs[:700]), ImportOptions{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("truncated tar: %v, want InvalidArgument", err)
	}
	checkConsistent(t, s)
}

// TestLoadHostile feeds broken and hostile archives: each is a clear
// InvalidArgument error, and nothing stays behind.
func TestLoadHostile(t *testing.T) {
	base, child := twoImages(t)
	good := dockerArchive(t, false, base, child)
	l := layerTar(t, fsEntry{Name: "f", Body: "x"})
	other := layerTar(t, fsEntry{Name: "f", Body: "y"})
	cases := map[string]struct {
		archive []byte
		class   errdefs.Class
		says    string
	}{
		"truncated archive":  {good[:len(good)/2], errdefs.InvalidArgumentClass, "truncated"},
		"not a tar":          {[]byte("this is not a tar stream at all, it is text. " + strings.Repeat("x", 600)), errdefs.InvalidArgumentClass, ""},
		"empty":              {nil, errdefs.InvalidArgumentClass, ""},
		"no manifest":        {tarOf(t, []archEntry{{Name: "foo/layer.tar", Body: l}}), errdefs.InvalidArgumentClass, "neither"},
		"bad gzip layer":     {dockerArchive(t, false, testImage{Config: configFor(t, "g", l), Layers: [][]byte{append([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, bytes.Repeat([]byte{0xff}, 100)...)}}), errdefs.InvalidArgumentClass, ""},
		"diff id mismatch":   {dockerArchive(t, false, testImage{Config: configFor(t, "m", l), Layers: [][]byte{other}}), errdefs.InvalidArgumentClass, "mismatch"},
		"missing layer":      {missingLayerArchive(t, l), errdefs.InvalidArgumentClass, "not in the archive"},
		"duplicate tags":     {dockerArchive(t, false, testImage{Tags: []string{"dup:1"}, Config: configFor(t, "a", l), Layers: [][]byte{l}}, testImage{Tags: []string{"dup:1"}, Config: configFor(t, "b", l), Layers: [][]byte{l}}), errdefs.InvalidArgumentClass, "two images"},
		"invalid tag":        {dockerArchive(t, false, testImage{Tags: []string{"Bad Name!"}, Config: configFor(t, "a", l), Layers: [][]byte{l}}), errdefs.InvalidArgumentClass, "invalid tag"},
		"path traversal":     {tarOf(t, []archEntry{{Name: "../../etc/evil", Body: []byte("x")}}), errdefs.InvalidArgumentClass, "outside"},
		"layer count":        {dockerArchive(t, false, testImage{Config: configFor(t, "c", l, other), Layers: [][]byte{l}}), errdefs.InvalidArgumentClass, "layers"},
		"oci blob digest":    {corruptOCIBlob(t), errdefs.InvalidArgumentClass, "mismatch|corrupt"}, // corrupt: overlay applies it as it comes
		"hostile layer path": {dockerArchive(t, false, testImage{Config: configFor(t, "h", layerTar(t, fsEntry{Name: "../escape", Body: "x"})), Layers: [][]byte{layerTar(t, fsEntry{Name: "../escape", Body: "x"})}}), errdefs.InvalidArgumentClass, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s, root := newTestStore(t)
			// A good image first, which must survive the failure.
			load(t, s, dockerArchive(t, false, base))
			_, err := s.Load(context.Background(), bytes.NewReader(c.archive), nil)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if errdefs.ClassOf(err) != c.class {
				t.Errorf("error class %v, want %v: %v", errdefs.ClassOf(err), c.class, err)
			}
			if c.says != "" && !saysOneOf(err.Error(), c.says) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
			imgs, _ := s.Images(context.Background())
			if len(imgs) != 1 {
				t.Errorf("%d images after a failed load, want the 1 from before", len(imgs))
			}
			checkConsistent(t, s)
			// And a reopened store finds nothing to repair.
			s.Close()
			s2 := openTestStore(t, root)
			checkConsistent(t, s2)
		})
	}
}

// saysOneOf reports whether msg holds one of the '|'-separated words.
func saysOneOf(msg, words string) bool {
	for _, w := range strings.Split(words, "|") {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

func missingLayerArchive(t testing.TB, l []byte) []byte {
	cfg := configFor(t, "m", l)
	ms, _ := json.Marshal([]archive.DockerManifest{{Config: "c.json", Layers: []string{"nowhere/layer.tar"}}})
	return tarOf(t, []archEntry{{Name: "c.json", Body: cfg}, {Name: "manifest.json", Body: ms}})
}

// corruptOCIBlob returns an OCI archive whose layer blob is not what its
// name says.
func corruptOCIBlob(t testing.TB) []byte {
	l := gzipped(t, layerTar(t, fsEntry{Name: "f", Body: "x"}))
	b := ociArchive(t, testImage{Config: configFor(t, "o", layerTar(t, fsEntry{Name: "f", Body: "x"})), Layers: [][]byte{l}})
	// Flip a byte inside the gzip member's payload (same length, so
	// the tar stays well-formed).
	i := bytes.Index(b, l)
	if i < 0 {
		t.Fatal("layer not found in archive")
	}
	b = bytes.Clone(b)
	b[i+len(l)-5] ^= 0xff
	return b
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	base, child := twoImages(t)
	load(t, s, dockerArchive(t, false, base, child))
	childImg, _ := s.Get(ctx, "child")

	// By id with two tags: refused without force.
	if _, err := s.Delete(ctx, ShortID(childImg.ID), DeleteOptions{}); !errdefs.IsConflict(err) {
		t.Fatalf("delete by id: %v, want Conflict", err)
	}
	// By tag: only untags.
	res, err := s.Delete(ctx, "child", DeleteOptions{})
	if err != nil || len(res.Untagged) != 1 || len(res.Deleted) != 0 {
		t.Fatalf("delete child = %+v, %v", res, err)
	}
	if _, err := s.Get(ctx, "child"); !errdefs.IsNotFound(err) {
		t.Fatalf("child still resolves: %v", err)
	}
	// Used by a container: refused, even forced (then only untagged).
	inUse := func(digest.Digest) (string, bool) { return "c0ffee", true }
	if _, err := s.Delete(ctx, "example.org/team/child:v2", DeleteOptions{InUse: inUse}); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "c0ffee") {
		t.Fatalf("delete in use: %v, want Conflict naming the container", err)
	}
	if _, err := s.Delete(ctx, string(childImg.ID), DeleteOptions{InUse: inUse, Force: true}); !errdefs.IsConflict(err) {
		t.Fatalf("forced delete by id in use: %v, want Conflict", err)
	}
	// Held: refused.
	_, release, err := s.Hold(ctx, "example.org/team/child:v2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "example.org/team/child:v2", DeleteOptions{}); !errdefs.IsConflict(err) {
		t.Fatalf("delete held: %v, want Conflict", err)
	}
	release()
	res, err = s.Delete(ctx, "example.org/team/child:v2", DeleteOptions{})
	if err != nil || len(res.Deleted) != 2 { // the image and its own layer
		t.Fatalf("delete last tag = %+v, %v", res, err)
	}
	// The base layer stays for base:1.
	if got := layerFile(t, s, "base:1", "bin/sh"); got != "#!shell" {
		t.Errorf("base lost its layer: %q", got)
	}
	checkConsistent(t, s)
	if _, err := s.Delete(ctx, "nosuch", DeleteOptions{}); !errdefs.IsNotFound(err) {
		t.Errorf("delete missing: %v", err)
	}
	if _, err := s.Delete(ctx, "base:1", DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.driver.List(ctx); len(ids) != 0 {
		t.Errorf("layers left: %v", ids)
	}
	checkConsistent(t, s)
}

func TestTagAndResolve(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	base, child := twoImages(t)
	load(t, s, dockerArchive(t, false, base, child))
	ref, _ := ParseTag("base:1")
	res, err := s.Tag(ctx, "child", ref)
	if err != nil {
		t.Fatal(err)
	}
	if res.Previous != digest.FromBytes(base.Config) {
		t.Errorf("Previous = %s", res.Previous)
	}
	img, err := s.Get(ctx, "docker.io/library/base:1")
	if err != nil || img.ID != digest.FromBytes(child.Config) {
		t.Fatalf("base:1 → %s, %v", img.ID, err)
	}
	baseImg, err := s.Get(ctx, digest.FromBytes(base.Config).Encoded()[:8])
	if err != nil || len(baseImg.RepoTags) != 0 {
		t.Fatalf("by short id: %+v, %v", baseImg, err)
	}
	if _, err := s.Get(ctx, "UPPER"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("invalid name: %v", err)
	}
	if _, err := s.Tag(ctx, "nosuch", ref); !errdefs.IsNotFound(err) {
		t.Errorf("tag missing image: %v", err)
	}
}

// TestAbandonedLoad stands for a crash half-way through a load: a layer
// was created and recorded but the image never committed; another was
// begun in the driver only. The next Open removes both.
func TestAbandonedLoad(t *testing.T) {
	ctx := context.Background()
	s, root := newTestStore(t)
	base, child := twoImages(t)
	load(t, s, dockerArchive(t, false, base))

	in := s.begin()
	l2 := layerTar(t, fsEntry{Name: "x", Body: "half"})
	if _, err := in.layer(ctx, "", digest.FromBytes(l2), "", bytes.NewReader(l2), nil); err != nil {
		t.Fatal(err)
	}
	// A layer begun: orphan record and driver layer, no record.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := addOrphan(tx, orphanRecord{DriverID: "deadbeef", Reason: "test"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.driver.Create(ctx, "deadbeef", ""); err != nil {
		t.Fatal(err)
	}
	// A stray blob, as if a config was written and the commit never came.
	if _, err := s.content.PutBytes(child.Config, ""); err != nil {
		t.Fatal(err)
	}
	// "Crash": no finish, no commit. Reopen.
	s.Close()
	s2 := openTestStore(t, root)
	checkConsistent(t, s2)
	if imgs, _ := s2.Images(ctx); len(imgs) != 1 {
		t.Fatalf("%d images after repair", len(imgs))
	}
	if got := layerFile(t, s2, "base:1", "bin/sh"); got != "#!shell" {
		t.Errorf("base damaged by the repair: %q", got)
	}
	load(t, s2, dockerArchive(t, false, base, child))
	checkConsistent(t, s2)
}

// TestRepairMissingLayer removes a layer behind the store's back: the
// image that needs it is dropped at the next Open, the others stay.
func TestRepairMissingLayer(t *testing.T) {
	ctx := context.Background()
	s, root := newTestStore(t)
	base, child := twoImages(t)
	load(t, s, dockerArchive(t, false, base, child))
	img, _ := s.Get(ctx, "child")
	if err := s.driver.Remove(ctx, img.TopLayer); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := openTestStore(t, root)
	if _, err := s2.Get(ctx, "child"); !errdefs.IsNotFound(err) {
		t.Errorf("child survived its missing layer: %v", err)
	}
	if _, err := s2.Get(ctx, "base:1"); err != nil {
		t.Errorf("base lost: %v", err)
	}
	checkConsistent(t, s2)
}

func TestLoadCanceled(t *testing.T) {
	s, _ := newTestStore(t)
	base, _ := twoImages(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Load(ctx, bytes.NewReader(dockerArchive(t, false, base)), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a cancelled context: %v", err)
	}
	checkConsistent(t, s)
}

// TestDuplicatePaths loads layers that name a path twice, as some image
// builders write them: the later entry wins. A repeated folder saves
// exactly; a file whose first content was overwritten cannot be rebuilt,
// and save says so.
func TestDuplicatePaths(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	dupDir := layerTar(t, fsEntry{Name: "etc/", Dir: true}, fsEntry{Name: "etc/a", Body: "a"}, fsEntry{Name: "etc/", Dir: true, Mode: 0o700})
	dupFile := layerTar(t, fsEntry{Name: "f", Body: "first"}, fsEntry{Name: "f", Body: "second"})
	load(t, s, dockerArchive(t, false,
		testImage{Tags: []string{"dupdir"}, Config: configFor(t, "d", dupDir), Layers: [][]byte{dupDir}},
		testImage{Tags: []string{"dupfile"}, Config: configFor(t, "f", dupFile), Layers: [][]byte{dupFile}}))
	if got := layerFile(t, s, "dupfile", "f"); got != "second" {
		t.Errorf("f = %q, want the later entry", got)
	}
	var out bytes.Buffer
	if _, err := s.Save(ctx, []string{"dupdir"}, &out); err != nil {
		t.Errorf("save of a repeated folder: %v", err)
	}
	if !bytes.Contains(out.Bytes(), dupDir) {
		t.Error("the saved archive does not hold the layer as loaded")
	}
	if _, err := s.Save(ctx, []string{"dupfile"}, io.Discard); err == nil {
		t.Error("save rebuilt a layer whose overwritten file is gone")
	}
	checkConsistent(t, s)
}

// TestConcurrentLoadsAndDeletes loads archives that share layers while
// images are deleted; the store ends consistent and every load that
// returned is complete.
func TestConcurrentLoadsAndDeletes(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	base, child := twoImages(t)
	archs := [][]byte{dockerArchive(t, false, base, child), dockerArchive(t, true, child), ociArchive(t, base)}
	done := make(chan error)
	for i := 0; i < 6; i++ {
		go func(i int) {
			_, err := s.Load(ctx, bytes.NewReader(archs[i%len(archs)]), nil)
			done <- err
		}(i)
		go func() {
			_, err := s.Delete(ctx, "child", DeleteOptions{Force: true})
			if errdefs.IsNotFound(err) || errdefs.IsConflict(err) {
				err = nil
			}
			done <- err
		}()
	}
	for i := 0; i < 12; i++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	checkConsistent(t, s)
	load(t, s, archs[0])
	if got := layerFile(t, s, "child", "etc/os-release"); got != "child\n" {
		t.Errorf("os-release = %q", got)
	}
	checkConsistent(t, s)
}

// TestSaveByIDHasNoTags: a name that is an image id puts no tag in the
// archive (Docker's save), while a reference puts its own.
func TestSaveByIDHasNoTags(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	base, _ := twoImages(t)
	load(t, s, dockerArchive(t, false, base))
	img, release, err := s.Hold(ctx, "base:1")
	if err != nil {
		t.Fatal(err)
	}
	release()
	for name, want := range map[string]string{img.ID.String(): "", img.ID.Encoded()[:12]: "", "base:1": "base:1"} {
		var out bytes.Buffer
		if _, err := s.Save(ctx, []string{name}, &out); err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(&out)
		for {
			h, err := tr.Next()
			if err != nil {
				t.Fatalf("%s: no manifest.json: %v", name, err)
			}
			if h.Name != "manifest.json" {
				continue
			}
			b, _ := io.ReadAll(tr)
			ms, err := archive.ParseDockerManifest(b)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(ms[0].RepoTags, ","); got != want {
				t.Errorf("save %s: tags %q, want %q", name, got, want)
			}
			break
		}
	}
}
