package builder

import (
	"compress/bzip2"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/ulikunitz/xz"

	"example.org/ctr/internal/errdefs"
)

func bzipReader(r io.Reader) io.Reader { return bzip2.NewReader(r) }

func xzReader(r io.Reader) (io.Reader, error) { return xz.NewReader(r) }

// applyIgnore removes from the context folder dir what the .dockerignore
// patterns exclude, with docker's rules (patternmatcher: `**`, `!`
// exceptions, the last matching pattern wins). keep (the Dockerfile and
// .dockerignore) stay whatever the patterns say, as docker sends them.
func applyIgnore(dir string, patterns []string, keep ...string) error {
	if len(patterns) == 0 {
		return nil
	}
	pm, kept, err := ignoreMatcher(patterns, keep)
	if err != nil {
		return err
	}
	var emptyDirs []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		if kept[rel] {
			return nil
		}
		m, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return errdefs.InvalidArgument(".dockerignore: %v", err)
		}
		if !m {
			return nil
		}
		if d.IsDir() {
			if !pm.Exclusions() {
				if err := os.RemoveAll(p); err != nil {
					return err
				}
				return filepath.SkipDir
			}
			emptyDirs = append(emptyDirs, p)
			return nil
		}
		return os.Remove(p)
	})
	if err != nil {
		return err
	}
	// An excluded folder stays only for what an exception keeps in it.
	for i := len(emptyDirs) - 1; i >= 0; i-- {
		_ = os.Remove(emptyDirs[i]) // fails unless empty
	}
	return nil
}

// inContext resolves the context path name (relative to the context's
// root, "/" being the root) to a path under dir. A name that climbs out
// of the context, or a symbolic link that leads out of it, is an
// InvalidArgument error, as docker's "forbidden path outside the build
// context".
func inContext(dir, name string) (string, error) {
	clean := filepath.Clean(string(filepath.Separator) + name)
	if rel := filepath.Clean(name); rel == ".." || strings.HasPrefix(rel, "../") {
		return "", errdefs.InvalidArgument("forbidden path outside the build context: %s", name)
	}
	p := filepath.Join(dir, clean)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errdefs.InvalidArgument("%s: no such file or directory in the build context", name)
		}
		return "", err
	}
	base, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	if real != base && !strings.HasPrefix(real, base+string(filepath.Separator)) {
		return "", errdefs.InvalidArgument("forbidden path outside the build context: %s (a symbolic link leads to %s)", name, real)
	}
	return real, nil
}

// ignoreMatcher compiles .dockerignore's patterns, and the set of paths
// kept whatever they say (cleaned), for applyIgnore and ctxIndex.ignore.
func ignoreMatcher(patterns, keep []string) (*patternmatcher.PatternMatcher, map[string]bool, error) {
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, nil, errdefs.InvalidArgument(".dockerignore: %v", err)
	}
	kept := map[string]bool{}
	for _, k := range keep {
		kept[filepath.Clean(k)] = true
	}
	return pm, kept, nil
}
