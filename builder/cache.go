package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"example.org/ctr/engine"
)

// bucketCache maps a step's cache key (hex) to the id of the image the
// step made.
var bucketCache = []byte("cache")

// stepKey is what decides whether a step can be reused. Two steps with
// the same key make the same image.
type stepKey struct {
	// Parent is the id of the image the step runs on ("" for scratch);
	// it covers the whole run configuration (env, user, workdir, shell).
	Parent string `json:"parent"`
	// Instruction is the instruction's name, Args its arguments after
	// variable expansion (the command as JSON).
	Instruction string          `json:"instruction"`
	Args        json.RawMessage `json:"args"`
	// BuildArgs are the build args the step sees, sorted "k=v".
	BuildArgs []string `json:"build_args,omitempty"`
	// Content is the hash of what COPY or ADD copies.
	Content string `json:"content,omitempty"`
	// Extra is what else a step depends on (RUN's shell, network mode).
	Extra []string `json:"extra,omitempty"`
}

// key returns the cache key of k: the sha256 of its JSON.
func (k stepKey) key() string {
	b, _ := json.Marshal(k)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// lookup returns the image a step with key made, if the cache has it
// and the image is still there.
func (s *Service) lookup(ctx context.Context, key string) (string, bool) {
	var id string
	_ = s.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketCache).Get([]byte(key)))
		return nil
	})
	if id == "" {
		return "", false
	}
	if _, err := s.opts.Images.Get(ctx, id); err != nil {
		return "", false
	}
	return id, true
}

// remember records that the step with key made image id.
func (s *Service) remember(key, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCache).Put([]byte(key), []byte(id))
	})
}

// contentHash hashes the files a COPY or ADD takes: for each source (a
// path on the host and the name it gets), every file under it with its
// relative name, type, mode, owner, size, link target and content; not
// its times (hashRecord). Two copies with the same hash put the same
// files in place. The index of a context hashes its entries the same way
// (ctxIndex.hash).
func contentHash(srcs []source) (string, error) {
	h := sha256.New()
	for _, src := range srcs {
		fmt.Fprintf(h, "source %q\n", src.name)
		err := filepath.WalkDir(src.path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src.path, p)
			st, err := os.Lstat(p)
			if err != nil {
				return err
			}
			var uid, gid int
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				uid, gid = int(sys.Uid), int(sys.Gid)
			}
			var link string
			var sum []byte
			switch {
			case st.Mode()&fs.ModeSymlink != 0:
				if link, err = os.Readlink(p); err != nil {
					return err
				}
			case st.Mode().IsRegular():
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				fh := contentDigest()
				_, err = io.Copy(fh, f)
				f.Close()
				if err != nil {
					return err
				}
				sum = fh.Sum(nil)
			}
			hashRecord(h, filepath.ToSlash(rel), st.Mode(), uid, gid, st.Size(), link, sum)
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// PruneRequest is the env of the build_prune job (POST /build/prune).
type PruneRequest struct {
	// Filters and the other parameters are accepted for the API's sake;
	// the classic builder's cache is pruned whole.
	Filters     string `env:"filters"`
	All         bool   `env:"all"`
	KeepStorage int64  `env:"keep-storage"`
}

// jobPrune empties the cache index. The images of the steps are images
// of the store: `docker image prune` removes those that no tag or
// container keeps; this job forgets which step made which, so that no
// later build reuses them. The space they take is reported by the image
// prune, not here: SpaceReclaimed is 0.
func (s *Service) jobPrune(ctx context.Context, job *engine.Job) error {
	var req PruneRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	report := buildtypes.CachePruneReport{CachesDeleted: []string{}}
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCache).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			report.CachesDeleted = append(report.CachesDeleted, digest.Digest(v).Encoded())
		}
		if err := tx.DeleteBucket(bucketCache); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketCache)
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(report.CachesDeleted)
	job.Reply(report)
	return nil
}
