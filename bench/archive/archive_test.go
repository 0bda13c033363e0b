package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entries reads a tar stream into name -> contents (regular files) and
// name -> header.
func entries(t *testing.T, r io.Reader) (map[string][]byte, map[string]*tar.Header) {
	t.Helper()
	files := map[string][]byte{}
	hdrs := map[string]*tar.Header{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs[h.Name] = h
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = b
		}
	}
	return files, hdrs
}

func TestWriteMakesADockerSaveArchive(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	spec := Spec{Size: 3 << 20, Layers: 3, Seed: 7, Tag: "ctrbench/test:latest"}
	im, err := Write(&buf, spec, dir)
	if err != nil {
		t.Fatal(err)
	}
	if im.Bytes != int64(buf.Len()) {
		t.Errorf("Bytes = %d, wrote %d", im.Bytes, buf.Len())
	}
	files, _ := entries(t, bytes.NewReader(buf.Bytes()))

	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || len(manifest[0].Layers) != 3 || manifest[0].RepoTags[0] != spec.Tag {
		t.Fatalf("manifest = %+v", manifest)
	}
	config := files[manifest[0].Config]
	sum := sha256.Sum256(config)
	if "sha256:"+hex.EncodeToString(sum[:]) != im.ID || manifest[0].Config != hex.EncodeToString(sum[:])+".json" {
		t.Errorf("config %s digests to %x, image ID %s", manifest[0].Config, sum, im.ID)
	}
	var cfg struct {
		OS     string
		RootFS struct {
			Type    string
			DiffIDs []string `json:"diff_ids"`
		}
	}
	if err := json.Unmarshal(config, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.OS != "linux" || cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != 3 {
		t.Fatalf("config = %+v", cfg)
	}

	var contents int64
	var prev int64 = 1 << 62
	for i, name := range manifest[0].Layers {
		layer := files[name]
		sum := sha256.Sum256(layer)
		if d := "sha256:" + hex.EncodeToString(sum[:]); d != cfg.RootFS.DiffIDs[i] || d != im.Layers[i].DiffID {
			t.Errorf("layer %d digests to %s; config says %s, Image %s", i, d, cfg.RootFS.DiffIDs[i], im.Layers[i].DiffID)
		}
		onDisk, err := os.ReadFile(filepath.Join(dir, "layer-"+string(rune('1'+i))+".tar"))
		if err != nil || !bytes.Equal(onDisk, layer) {
			t.Errorf("layer-%d.tar differs from the archive's %s (%v)", i+1, name, err)
		}
		lf, lh := entries(t, bytes.NewReader(layer))
		var size int64
		var regular, links int
		for n, h := range lh {
			switch h.Typeflag {
			case tar.TypeReg:
				regular++
				size += int64(len(lf[n]))
			case tar.TypeSymlink, tar.TypeLink:
				links++
				if h.Typeflag == tar.TypeLink && lh[h.Linkname] == nil {
					t.Errorf("hard link %s to %s, which is not in the layer", n, h.Linkname)
				}
			}
			if strings.HasPrefix(n, "/") || strings.Contains(n, "..") {
				t.Errorf("entry %q leaves the layer", n)
			}
		}
		if regular != im.Layers[i].Files || links != im.Layers[i].Links || regular == 0 || links == 0 {
			t.Errorf("layer %d: %d files, %d links; Image says %+v", i, regular, links, im.Layers[i])
		}
		if size > prev {
			t.Errorf("layer %d holds %d bytes, more than the one before (%d)", i, size, prev)
		}
		prev = size
		contents += size
	}
	if contents != spec.Size {
		t.Errorf("files hold %d bytes in all, want %d", contents, spec.Size)
	}
}

func TestWriteIsRepeatable(t *testing.T) {
	spec := Spec{Size: 1 << 20, Layers: 2, Seed: 3, Tag: "a:b"}
	var a, b, c bytes.Buffer
	ia, err := Write(&a, spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ib, err := Write(&b, spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if ia.ID != ib.ID || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("the same spec gave %s and %s", ia.ID, ib.ID)
	}
	spec.Seed = 4
	ic, err := Write(&c, spec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if ic.ID == ia.ID {
		t.Error("another seed gave the same image")
	}
}

func TestWriteRefusesBadSpecs(t *testing.T) {
	for _, s := range []Spec{
		{Size: 10, Layers: 0, Tag: "a:b"},
		{Size: 1, Layers: 2, Tag: "a:b"},
		{Size: 100, Layers: 1},
	} {
		if _, err := Write(io.Discard, s, t.TempDir()); err == nil {
			t.Errorf("Write(%+v) succeeded", s)
		}
	}
}
