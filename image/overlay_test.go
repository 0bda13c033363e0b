package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"

	"example.org/ctr/drivers/graph/overlay"
	"example.org/ctr/drivers/graph/vfs"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/internal/testenv"
)

// useOverlay makes the store tests of t use the overlay driver (see
// openTestStore).
func useOverlay(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testDriver = overlay.Name
	t.Cleanup(func() { testDriver = vfs.Name })
}

// TestOnOverlay runs the store's tests again on the overlay driver, with
// real mounts (root tier). Every archive file is streamed rather than kept
// in memory, so the small test layers are applied from the stream
// (manifest first), staged without a parent and put on it later (manifest
// last), or spooled (vfs never stages); no mount may be left behind.
func TestOnOverlay(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"LoadDockerArchive", TestLoadDockerArchive},
		{"LoadOCILayout", TestLoadOCILayout},
		{"LoadCompressedArchiveAndZstdLayers", TestLoadCompressedArchiveAndZstdLayers},
		{"SaveRoundTrip", TestSaveRoundTrip},
		{"Import", TestImport},
		{"LoadHostile", TestLoadHostile},
		{"Delete", TestDelete},
		{"TagAndResolve", TestTagAndResolve},
		{"AbandonedLoad", TestAbandonedLoad},
		{"RepairMissingLayer", TestRepairMissingLayer},
		{"LoadCanceled", TestLoadCanceled},
		{"DuplicatePaths", TestDuplicatePaths},
		{"ConcurrentLoadsAndDeletes", TestConcurrentLoadsAndDeletes},
		{"StagedLayers", testStagedLayers},
		{"Jobs", TestJobs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			useOverlay(t)
			tc.f(t)
		})
	}
}

// testStagedLayers loads archives whose manifest comes last on overlay,
// where layers are applied before the store knows their parents: one
// layer file that two images put on different parents (the second copy is
// rebuilt from the first), a broken file no manifest names (no error), a
// broken one a manifest names (an error that leaves nothing). Each image
// is saved again exactly.
func testStagedLayers(t *testing.T) {
	ctx := context.Background()
	s, root := newTestStore(t)
	a := layerTar(t, fsEntry{Name: "a", Body: "a"})
	b := layerTar(t, fsEntry{Name: "b", Body: "b"})
	shared := layerTar(t, fsEntry{Name: "etc/", Dir: true}, fsEntry{Name: "etc/shared", Body: "shared"}, fsEntry{Name: ".wh.a", Body: ""})
	imgA := testImage{Tags: []string{"on-a"}, Config: configFor(t, "on-a", a, shared), Layers: [][]byte{a, shared}}
	imgB := testImage{Tags: []string{"on-b"}, Config: configFor(t, "on-b", b, shared), Layers: [][]byte{b, shared}}
	arch := dockerArchive(t, false, imgA, imgB)
	// A tar-like file that is no layer of any image, and broken.
	junk := layerTar(t, fsEntry{Name: "x", Body: "junk"})
	arch = appendArchiveFile(t, arch, "junk/layer.tar", junk[:700])

	res := load(t, s, arch)
	if len(res) != 2 {
		t.Fatalf("Load = %+v", res)
	}
	if got := layerFile(t, s, "on-a", "etc/shared"); got != "shared" {
		t.Errorf("on-a: etc/shared = %q", got)
	}
	if got := layerFile(t, s, "on-a", "a"); got[0] != '<' {
		t.Errorf("on-a: a is %q, want it whited out", got)
	}
	if got := layerFile(t, s, "on-b", "b"); got != "b" {
		t.Errorf("on-b: b = %q", got)
	}
	if ids, _ := s.driver.List(ctx); len(ids) != 4 {
		t.Errorf("%d driver layers, want 4 (a, b, shared on a, shared on b)", len(ids))
	}
	checkConsistent(t, s)
	for _, img := range []testImage{imgA, imgB} {
		var out bytes.Buffer
		if _, err := s.Save(ctx, img.Tags[:1], &out); err != nil {
			t.Fatalf("save %s: %v", img.Tags[0], err)
		}
		for _, l := range img.Layers {
			if !bytes.Contains(out.Bytes(), l) {
				t.Errorf("save %s: layer %s is not as loaded", img.Tags[0], digest.FromBytes(l))
			}
		}
	}

	// A manifest that names a broken layer file: an error, nothing left.
	broken := layerTar(t, fsEntry{Name: "c", Body: "c"})
	bad := dockerArchive(t, false, testImage{Tags: []string{"broken"}, Config: configFor(t, "broken", broken), Layers: [][]byte{broken[:700]}})
	if _, err := s.Load(ctx, bytes.NewReader(bad), nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("broken layer: %v, want InvalidArgument", err)
	}
	checkConsistent(t, s)
	s.Close()
	checkConsistent(t, openTestStore(t, root))
}

// appendArchiveFile adds a file to the end of a tar archive.
func appendArchiveFile(t *testing.T, arch []byte, name string, body []byte) []byte {
	t.Helper()
	files := readArchive(t, arch)
	files = append(files, archEntry{Name: name, Body: body})
	return tarOf(t, files)
}

// readArchive returns the regular files of a tar archive, in order.
func readArchive(t *testing.T, arch []byte) []archEntry {
	t.Helper()
	var files []archEntry
	tr := tar.NewReader(bytes.NewReader(arch))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, archEntry{Name: h.Name, Body: body})
	}
}
