// Package archive writes the synthetic image that ctr's benchmark harness
// loads: a `docker save` archive (one uncompressed DIGEST/layer.tar per
// layer, the image config, manifest.json, in the order docker save writes
// them; https://github.com/moby/moby/blob/master/image/spec/v1.2.md
// describes the format) that both `ctrctl load` and `docker load` read, with layers of
// files of mixed sizes whose contents come from a seeded generator, so the
// same Spec always gives the same archive.
//
// Each layer is also kept as a plain tar file beside the archive, so that
// the harness can time `tar -x` of exactly the same layers as the floor.
package archive

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// Spec says what image to make.
type Spec struct {
	// Size is the total size of the files' contents, in bytes, over all
	// layers (the tar files are a little larger: headers and padding).
	Size int64
	// Layers is the number of layers (at least 1). The first is the
	// largest: layer i of n gets (n-i)/(n(n+1)/2) of Size.
	Layers int
	// Seed chooses the sizes, names and contents.
	Seed uint64
	// Tag names the image in manifest.json ("ctrbench/load:latest").
	Tag string
}

// Layer is one layer as written.
type Layer struct {
	// Path is the layer's tar file.
	Path string
	// DiffID is the sha256 digest of the tar ("sha256:…").
	DiffID string
	// Bytes is the tar's size; Files, Dirs and Links count its entries
	// (Links: symbolic and hard links).
	Bytes              int64
	Files, Dirs, Links int
}

// Image is what Write made.
type Image struct {
	// ID is the digest of the image config ("sha256:…"), the image ID
	// both ctrd and docker report.
	ID string
	// Layers are in order, base first.
	Layers []Layer
	// Bytes is the size of the archive.
	Bytes int64
}

// Files is the number of regular files over all layers.
func (im Image) Files() int {
	n := 0
	for _, l := range im.Layers {
		n += l.Files
	}
	return n
}

// epoch is every entry's modification time: a fixed one, so that the
// archive is the same on every run.
var epoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Size classes of the files of a layer: each gets share percent of the
// layer's bytes, in files of min to max bytes (uniformly drawn).
var classes = []struct {
	name     string
	share    int64
	min, max int64
}{
	{"small", 25, 512, 32 << 10},
	{"medium", 35, 64 << 10, 2 << 20},
	{"large", 40, 4 << 20, 24 << 20},
}

// filesPerDir bounds the entries of each generated folder.
const filesPerDir = 100

// Write makes the image of spec: each layer as layerDir/layer-N.tar
// (N from 1), and the archive on w. layerDir must exist.
func Write(w io.Writer, spec Spec, layerDir string) (Image, error) {
	if spec.Layers < 1 || spec.Size < int64(spec.Layers) {
		return Image{}, fmt.Errorf("archive: need at least one layer and one byte per layer (layers %d, size %d)", spec.Layers, spec.Size)
	}
	if spec.Tag == "" {
		return Image{}, errors.New("archive: no tag")
	}
	var im Image
	weights := int64(spec.Layers * (spec.Layers + 1) / 2)
	left := spec.Size
	for i := 0; i < spec.Layers; i++ {
		budget := spec.Size * int64(spec.Layers-i) / weights
		if i == spec.Layers-1 {
			budget = left
		}
		left -= budget
		l, err := writeLayer(filepath.Join(layerDir, fmt.Sprintf("layer-%d.tar", i+1)), i+1, budget, spec.Seed)
		if err != nil {
			return Image{}, err
		}
		im.Layers = append(im.Layers, l)
	}
	config, err := imageConfig(im.Layers)
	if err != nil {
		return Image{}, err
	}
	sum := sha256.Sum256(config)
	hexID := hex.EncodeToString(sum[:])
	im.ID = "sha256:" + hexID

	cw := &countWriter{w: w}
	tw := tar.NewWriter(cw)
	manifest := []map[string]any{{"Config": hexID + ".json", "RepoTags": []string{spec.Tag}, "Layers": layerNames(im.Layers)}}
	mb, err := json.Marshal(manifest)
	if err != nil {
		return Image{}, err
	}
	// docker save's order: the layers, then the config, then the manifest
	for i, l := range im.Layers {
		dir := layerNames(im.Layers)[i]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: filepath.Dir(dir) + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return Image{}, err
		}
		if err := addFile(tw, dir, l.Path, l.Bytes); err != nil {
			return Image{}, err
		}
	}
	if err := addBytes(tw, hexID+".json", config); err != nil {
		return Image{}, err
	}
	if err := addBytes(tw, "manifest.json", mb); err != nil {
		return Image{}, err
	}
	if err := tw.Close(); err != nil {
		return Image{}, err
	}
	im.Bytes = cw.n
	return im, nil
}

// layerNames are the layers' paths inside the archive: DIGEST/layer.tar.
func layerNames(ls []Layer) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.DiffID[len("sha256:"):] + "/layer.tar"
	}
	return out
}

// imageConfig is the image's config: an OCI image config with the layers'
// diff IDs.
func imageConfig(ls []Layer) ([]byte, error) {
	diffIDs := make([]string, len(ls))
	history := make([]map[string]any, len(ls))
	for i, l := range ls {
		diffIDs[i] = l.DiffID
		history[i] = map[string]any{"created": epoch.Format(time.RFC3339),
			"created_by": fmt.Sprintf("ctr bench: layer %d of %d files", i+1, l.Files)}
	}
	return json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config":       map[string]any{"Cmd": []string{"/bin/sh"}, "Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history":      history,
	})
}

// writeLayer writes layer n, with files of about budget bytes in all, to
// path, and digests it as it goes.
func writeLayer(path string, n int, budget int64, seed uint64) (Layer, error) {
	f, err := os.Create(path)
	if err != nil {
		return Layer{}, err
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	l, err := layerContents(tar.NewWriter(cw), n, budget, seed)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Layer{}, fmt.Errorf("archive: layer %d: %w", n, err)
	}
	l.Path, l.Bytes = path, cw.n
	l.DiffID = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return l, nil
}

// layerContents writes the entries of layer n: under data/lN/CLASS/dNNN/,
// files of each size class until its share of budget is spent, a
// symbolic link beside every 50th file and one hard link per class.
func layerContents(tw *tar.Writer, n int, budget int64, seed uint64) (Layer, error) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(n))
	src := rand.NewChaCha8(key)
	rng := rand.New(src)
	var l Layer
	dir := func(name string) error {
		l.Dirs++
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	top := fmt.Sprintf("data/l%d", n)
	for _, d := range []string{"data", top} {
		if err := dir(d); err != nil {
			return l, err
		}
	}
	left := budget
	for ci, c := range classes {
		share := budget * c.share / 100
		if ci == len(classes)-1 {
			share = left // what rounding left over
		}
		left -= share
		cdir := top + "/" + c.name
		if err := dir(cdir); err != nil {
			return l, err
		}
		var firstFile string
		for i := 0; share > 0; i++ {
			if i%filesPerDir == 0 {
				if err := dir(fmt.Sprintf("%s/d%03d", cdir, i/filesPerDir)); err != nil {
					return l, err
				}
			}
			size := c.min + rng.Int64N(c.max-c.min+1)
			size = min(size, share)
			share -= size
			name := fmt.Sprintf("%s/d%03d/f%05d.bin", cdir, i/filesPerDir, i)
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
				return l, err
			}
			if _, err := io.CopyN(tw, src, size); err != nil {
				return l, err
			}
			l.Files++
			if firstFile == "" {
				firstFile = name
			}
			if i%50 == 49 {
				l.Links++
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name + ".link", Linkname: filepath.Base(name), ModTime: epoch, Mode: 0o777, Format: tar.FormatPAX}); err != nil {
					return l, err
				}
			}
		}
		if firstFile != "" {
			l.Links++
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: cdir + "/hardlink.bin", Linkname: firstFile, ModTime: epoch, Mode: 0o644, Format: tar.FormatPAX}); err != nil {
				return l, err
			}
		}
	}
	return l, tw.Close()
}

// addBytes adds a regular file holding b.
func addBytes(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: 0o644, ModTime: epoch}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

// addFile adds the file at path, of size bytes, as name.
func addFile(tw *tar.Writer, name, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: epoch}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, size)
	return err
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
