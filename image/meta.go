package image

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/internal/errdefs"
)

// The metadata database (bbolt) has one bucket per kind of record. Every
// change is one transaction, so a crash leaves the old or the new state.
//
//	images   image id → imageRecord
//	refs     full reference ("docker.io/library/busybox:latest") → image id
//	layers   chain id → layerRecord
//	orphans  sequence number → orphanRecord: driver layers (and blobs)
//	         that no record owns and that must be removed; written before
//	         a layer is created and when a layer is dropped, so that a
//	         crash never leaks a layer
//	meta     "version" → schema version
//	distribution  diff id → []blobSource: the registry blobs known to
//	         hold the layer (from pulls and pushes), so that a push skips
//	         or mounts what a registry has
var (
	bucketImages  = []byte("images")
	bucketRefs    = []byte("refs")
	bucketLayers  = []byte("layers")
	bucketOrphans = []byte("orphans")
	bucketMeta    = []byte("meta")
	bucketDist    = []byte("distribution")
)

// schemaVersion is the version of the database layout above.
const schemaVersion = "1"

// imageRecord is an image: its config is the content blob named by ID.
type imageRecord struct {
	// ID is the digest of the image's config.
	ID digest.Digest `json:"id"`
	// Layers are the chain ids of the image's layers, bottom first.
	Layers []digest.Digest `json:"layers"`
	// Created is the config's creation time.
	Created time.Time `json:"created"`
	// Size is the sum of the layers' sizes.
	Size int64 `json:"size"`
	// Stored is when the image entered this store.
	Stored time.Time `json:"stored"`
	// LastTagTime is when a tag last moved to the image.
	LastTagTime time.Time `json:"last_tag_time,omitempty"`
	// RepoDigests are the references by digest ("repo@sha256:…", full
	// form) the image was pulled by.
	RepoDigests []string `json:"repo_digests,omitempty"`
	// Parent is the image a commit or a build step made this one on;
	// the images list hides an untagged image that is another's parent
	// (as docker hides intermediate images).
	Parent digest.Digest `json:"parent,omitempty"`
}

// layerRecord is an image layer held by the graph driver.
type layerRecord struct {
	// ChainID names the layer with everything below it (OCI chain id).
	ChainID digest.Digest `json:"chain_id"`
	// DiffID is the digest of the layer's uncompressed tar stream.
	DiffID digest.Digest `json:"diff_id"`
	// Parent is the chain id of the layer below, "" for the bottom one.
	Parent digest.Digest `json:"parent,omitempty"`
	// DriverID is the graph driver's id of the layer: random, never
	// reused, so that removing a dropped layer never races with
	// creating a new one of the same chain.
	DriverID string `json:"driver_id"`
	// Size is the bytes of file content the layer holds.
	Size int64 `json:"size"`
	// TarSize is the length of the layer's tar stream.
	TarSize int64 `json:"tar_size"`
	// TarSplit is the content blob (zstd-compressed tar-split
	// metadata) from which the layer's exact tar stream is rebuilt.
	TarSplit digest.Digest `json:"tar_split"`
	// Refs counts the images whose chain holds the layer.
	Refs int64 `json:"refs"`
}

// orphanRecord is a driver layer and blob that nothing owns any more.
type orphanRecord struct {
	DriverID string        `json:"driver_id,omitempty"`
	Blob     digest.Digest `json:"blob,omitempty"`
	// Reason says why it is there, for the log.
	Reason string `json:"reason"`
}

func initBuckets(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketImages, bucketRefs, bucketLayers, bucketOrphans, bucketMeta, bucketDist} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	v := meta.Get([]byte("version"))
	if v != nil && string(v) != schemaVersion {
		return errdefs.NotImplemented("image metadata has schema version %s; this ctrd reads version %s", v, schemaVersion)
	}
	if v != nil {
		return nil // written already: nothing to commit
	}
	return meta.Put([]byte("version"), []byte(schemaVersion))
}

func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("image metadata: record %q of %s: %w", key, bucketName(b), err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func bucketName(b *bolt.Bucket) string {
	for _, n := range [][]byte{bucketImages, bucketRefs, bucketLayers, bucketOrphans} {
		if b.Tx().Bucket(n) == b {
			return string(n)
		}
	}
	return "?"
}

func getImage(tx *bolt.Tx, id digest.Digest) (imageRecord, bool, error) {
	var r imageRecord
	ok, err := getJSON(tx.Bucket(bucketImages), []byte(id), &r)
	return r, ok, err
}

func getLayer(tx *bolt.Tx, chain digest.Digest) (layerRecord, bool, error) {
	var r layerRecord
	ok, err := getJSON(tx.Bucket(bucketLayers), []byte(chain), &r)
	return r, ok, err
}

func putLayer(tx *bolt.Tx, r layerRecord) error {
	return putJSON(tx.Bucket(bucketLayers), []byte(r.ChainID), r)
}

// addOrphan records o for removal and returns its key.
func addOrphan(tx *bolt.Tx, o orphanRecord) ([]byte, error) {
	b := tx.Bucket(bucketOrphans)
	seq, err := b.NextSequence()
	if err != nil {
		return nil, err
	}
	key := binary.BigEndian.AppendUint64(nil, seq)
	return key, putJSON(b, key, o)
}

// tagsOf returns the full references that point at each image.
func tagsOf(tx *bolt.Tx) map[digest.Digest][]string {
	out := make(map[digest.Digest][]string)
	_ = tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
		id := digest.Digest(v)
		out[id] = append(out[id], string(k))
		return nil
	})
	return out
}

// allImages returns every image record.
func allImages(tx *bolt.Tx) ([]imageRecord, error) {
	var out []imageRecord
	err := tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
		var r imageRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("image metadata: image %s: %w", k, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// allLayers returns every layer record by chain id.
func allLayers(tx *bolt.Tx) (map[digest.Digest]layerRecord, error) {
	out := make(map[digest.Digest]layerRecord)
	err := tx.Bucket(bucketLayers).ForEach(func(k, v []byte) error {
		var r layerRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("image metadata: layer %s: %w", k, err)
		}
		out[r.ChainID] = r
		return nil
	})
	return out, err
}

// depth returns how many layers lie below chain.
func depth(layers map[digest.Digest]layerRecord, chain digest.Digest) int {
	n := 0
	for l, ok := layers[chain]; ok && l.Parent != "" && n <= len(layers); l, ok = layers[l.Parent] {
		n++
	}
	return n
}

// ChainID returns the chain id of a layer with diffID on top of the layer
// whose chain id is parent ("" for none), as the OCI image spec defines it
// (https://github.com/opencontainers/image-spec/blob/main/config.md#layer-chainid).
func ChainID(parent, diffID digest.Digest) digest.Digest {
	if parent == "" {
		return diffID
	}
	return digest.FromString(string(parent) + " " + string(diffID))
}
