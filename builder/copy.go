package builder

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"example.org/ctr/image"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// copySpec is a COPY or ADD after variable expansion.
type copySpec struct {
	name     string // COPY or ADD
	add      bool
	srcs     []string
	contents []instructions.SourceContent // heredoc sources
	dest     string
	chown    string
	chmod    string
	from     string
}

// source is one file or folder a copy takes: where it is on the host,
// and its name as the Dockerfile gave it (after wildcards); entry is its
// name in the context's index when it was found there.
type source struct {
	path  string
	name  string
	dir   bool
	entry string
	// idx, when set, is the index the source is copied from (entry
	// names it there) rather than the disk.
	idx *ctxIndex
}

// copyStep runs COPY or ADD: the sources resolved inside the context (or
// the --from stage or image), hashed for the cache key, then copied into
// a new layer. Context sources are resolved, hashed and copied from the
// context's index and spool, which needs no unpacking (the hash and the
// copy come from the same entries); a wildcard in a context with
// symbolic links, and a context the index does not describe, are read
// from the unpacked context.
func (b *build) copyStep(ctx context.Context, st *stage, c copySpec) error {
	if c.from != "" && c.add {
		return errdefs.InvalidArgument("ADD has no --from; use COPY --from")
	}
	for _, s := range c.srcs {
		if c.add && isURL(s) {
			return errdefs.NotImplemented("ADD of a URL (%s) is not supported by ctr's builder: fetch it with RUN (wget, curl) or COPY a local file", s)
		}
	}
	dest := c.dest
	destDir := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	dest = st.abs(dest)
	var mode *fs.FileMode
	if c.chmod != "" {
		m, err := strconv.ParseUint(c.chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return errdefs.InvalidArgument("%s --chmod=%s: want an octal mode", c.name, c.chmod)
		}
		fm := fs.FileMode(m)
		mode = &fm
	}
	fromID := ""
	var view string
	if c.from != "" {
		id, err := b.fromSource(ctx, st, c.from)
		if err != nil {
			return err
		}
		fromID = id
		release, vroot, _, err := b.s.view(ctx, id)
		if err != nil {
			return err
		}
		defer release()
		view = vroot
	}
	argsJSON, _ := json.Marshal(struct {
		Srcs              []string
		Dest, Chown, From string
		Chmod             string
		DestDir, Add      bool
	}{c.srcs, dest, c.chown, fromID, c.chmod, destDir, c.add})
	keyOf := func(srcs []source, hash string) (stepKey, string, error) {
		if len(srcs) > 1 && !destDir {
			return stepKey{}, "", errdefs.InvalidArgument("When using %s with more than one source file, the destination must be a directory and end with a /", c.name)
		}
		return stepKey{Parent: st.image, Instruction: c.name, Args: argsJSON, Content: hash, Extra: []string{st.author}}, copyCreatedBy(c, srcs, hash, dest, destDir), nil
	}
	var srcs []source
	var key stepKey
	var createdBy string
	if c.from == "" && len(c.contents) == 0 && b.ctx.idx != nil {
		// From the index: hashed, and copied on a miss, from what the
		// index holds, without unpacking the context.
		var err error
		srcs, err = b.indexSources(c)
		if err != nil && !errors.Is(err, errNeedDisk) {
			return err
		}
		if err != nil {
			srcs = nil
		}
	}
	if srcs != nil {
		var err error
		if key, createdBy, err = keyOf(srcs, b.ctx.idx.hash(srcs)); err != nil {
			return err
		}
	} else {
		if c.from == "" && len(c.srcs) > 0 {
			if err := b.ctx.unpack(ctx); err != nil {
				return err
			}
		}
		var cleanup func()
		var err error
		srcs, cleanup, err = b.diskSources(c, view)
		defer cleanup()
		if err != nil {
			return err
		}
		hash, err := contentHash(srcs)
		if err != nil {
			return err
		}
		if key, createdBy, err = keyOf(srcs, hash); err != nil {
			return err
		}
	}
	if hit, err := b.cached(ctx, st, key, createdBy); hit || err != nil {
		return err
	}
	id, err := b.s.layerStep(ctx, st.image, func(root string) (bool, error) {
		uid, gid, err := parseChown(root, c.chown)
		if err != nil {
			return false, err
		}
		cp := copier{ctx: ctx, root: root, uid: uid, gid: gid, mode: mode}
		for _, s := range srcs {
			if err := cp.copy(s, dest, destDir || len(srcs) > 1, c.add); err != nil {
				return false, fmt.Errorf("%s failed: %w", c.name, err)
			}
		}
		return true, nil
	}, image.CommitOptions{Parent: st.image, Config: st.cfg, CreatedBy: createdBy, Author: st.author})
	if err != nil {
		return err
	}
	st.image = id
	return b.s.remember(key.key(), id)
}

// indexSources resolves the copy's context sources in the context's
// index, wildcards too; errNeedDisk when the index cannot tell.
func (b *build) indexSources(c copySpec) ([]source, error) {
	x := b.ctx.idx
	var srcs []source
	for _, s := range c.srcs {
		names := []string{s}
		if strings.ContainsAny(s, "*?[") {
			m, err := x.glob(s)
			if err != nil {
				if errors.Is(err, errNeedDisk) {
					return nil, err
				}
				return nil, errdefs.InvalidArgument("%s %s: %v", c.name, s, err)
			}
			if len(m) == 0 {
				return nil, errdefs.InvalidArgument("%s failed: no source files were specified (%s matches nothing)", c.name, s)
			}
			names = m
		}
		for _, n := range names {
			rel, e, err := x.resolve(n)
			if err != nil {
				return nil, fmt.Errorf("%s failed: %w", c.name, err)
			}
			srcs = append(srcs, source{path: filepath.Join(b.ctx.tree, rel), name: n, dir: e.mode.IsDir(), entry: rel, idx: x})
		}
	}
	return srcs, nil
}

// diskSources resolves the copy's sources on the disk: in the unpacked
// context, or in view (the root of the --from image) when set; heredocs
// are written to files of their own, which cleanup removes.
func (b *build) diskSources(c copySpec, view string) ([]source, func(), error) {
	cleanup := func() {}
	root := b.ctx.tree
	resolve := func(name string) (string, error) { return inContext(root, name) }
	if view != "" {
		root = view
		resolve = func(name string) (string, error) {
			p, err := securejoin.SecureJoin(view, name)
			if err != nil {
				return "", err
			}
			if _, err := os.Stat(p); err != nil {
				return "", errdefs.InvalidArgument("%s --from=%s: %s: no such file or directory", c.name, c.from, name)
			}
			return p, nil
		}
	}
	var srcs []source
	for _, s := range c.srcs {
		names := []string{s}
		if strings.ContainsAny(s, "*?[") {
			rel := filepath.Clean(string(filepath.Separator) + s)
			matches, err := filepath.Glob(filepath.Join(root, rel))
			if err != nil {
				return nil, cleanup, errdefs.InvalidArgument("%s %s: %v", c.name, s, err)
			}
			names = names[:0]
			for _, m := range matches {
				r, err := filepath.Rel(root, m)
				if err == nil {
					names = append(names, r)
				}
			}
			if len(names) == 0 {
				return nil, cleanup, errdefs.InvalidArgument("%s failed: no source files were specified (%s matches nothing)", c.name, s)
			}
		}
		for _, n := range names {
			p, err := resolve(n)
			if err != nil {
				return nil, cleanup, fmt.Errorf("%s failed: %w", c.name, err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				return nil, cleanup, errdefs.InvalidArgument("%s failed: %s: %v", c.name, n, err)
			}
			srcs = append(srcs, source{path: p, name: n, dir: fi.IsDir()})
		}
	}
	if len(c.contents) > 0 {
		// COPY <<EOF: each heredoc is a file of its name, mode 0644.
		tmp, err := os.MkdirTemp(b.s.tmpDir(), "heredoc-")
		if err != nil {
			return nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(tmp) }
		for i, sc := range c.contents {
			p := filepath.Join(tmp, strconv.Itoa(i))
			if err := os.WriteFile(p, []byte(sc.Data), 0o644); err != nil {
				return nil, cleanup, err
			}
			if err := os.Chmod(p, 0o644); err != nil {
				return nil, cleanup, err
			}
			srcs = append(srcs, source{path: p, name: path.Base(sc.Path)})
		}
	}
	return srcs, cleanup, nil
}

// copyCreatedBy is the history line of a COPY or ADD, as docker writes
// it: `/bin/sh -c #(nop) COPY file:HEX in /dest ` (dir: for a folder,
// multi: for several sources). HEX is a sha256 over the content hash of
// the sources (names, types, modes, owners, contents) and what else
// decides the files the step puts in place (the destination, --chown,
// --chmod, ADD's unpacking), so that the line alone tells two different
// steps apart: a cache-from image's layer is taken on that line.
func copyCreatedBy(c copySpec, srcs []source, hash, dest string, destDir bool) string {
	kind := "file"
	if len(srcs) > 1 {
		kind = "multi"
	} else if len(srcs) == 1 && srcs[0].dir {
		kind = "dir"
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%q\n%q\n%q\n%t\n", hash, c.name, dest, c.chown, c.chmod, destDir)
	return fmt.Sprintf("/bin/sh -c #(nop) %s %s:%x in %s ", c.name, kind, h.Sum(nil), dest)
}

func isURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "git@") || strings.HasPrefix(l, "git://")
}

// fromSource names the image COPY --from takes: an earlier stage by name
// or index, or an image.
func (b *build) fromSource(ctx context.Context, st *stage, from string) (string, error) {
	for j := 0; j < st.index; j++ {
		if b.stages[j].Name != "" && strings.EqualFold(b.stages[j].Name, from) {
			return b.done[j], nil
		}
	}
	if n, err := strconv.Atoi(from); err == nil {
		if n < 0 || n >= st.index {
			return "", errdefs.InvalidArgument("COPY --from=%d: there is no earlier stage %d", n, n)
		}
		return b.done[n], nil
	}
	img, err := b.s.opts.Images.Get(ctx, from)
	if errdefs.IsNotFound(err) {
		if err := b.pull(ctx, from); err != nil {
			return "", err
		}
		img, err = b.s.opts.Images.Get(ctx, from)
	}
	if err != nil {
		return "", err
	}
	return img.ID.String(), nil
}

// copier copies sources into a layer's root.
type copier struct {
	ctx      context.Context
	root     string
	uid, gid int
	mode     *fs.FileMode
}

// target resolves the image path p inside the root.
func (c *copier) target(p string) (string, error) {
	return securejoin.SecureJoin(c.root, p)
}

// copy puts src at dest: a folder's content into dest, a file at dest
// or (intoDir, or dest an existing folder) in it; with add, a local tar
// archive is unpacked into dest instead.
func (c *copier) copy(src source, dest string, intoDir, add bool) error {
	if src.dir {
		if src.idx != nil {
			return c.treeIndex(src.idx, src.entry, dest)
		}
		return c.tree(src.path, dest)
	}
	open := func() (io.ReadCloser, error) { return os.Open(src.path) }
	var fi fs.FileInfo
	if src.idx != nil {
		open, fi = src.idx.opener(src.entry), src.idx.info(src.entry)
	}
	if add {
		if ok, err := c.untar(open, dest); ok || err != nil {
			return err
		}
	}
	host, err := c.target(dest)
	if err != nil {
		return err
	}
	if hfi, err := os.Stat(host); intoDir || (err == nil && hfi.IsDir()) {
		dest = path.Join(dest, path.Base(filepath.ToSlash(src.name)))
	}
	return c.file(open, fi, dest)
}

// untar unpacks src into dest if it is a tar archive (plain, gzip, zstd);
// false when it is not one.
func (c *copier) untar(open func() (io.ReadCloser, error), dest string) (bool, error) {
	f, err := open()
	if err != nil {
		return false, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	plain, comp, err := layertar.Decompress(br)
	if err != nil {
		return false, nil
	}
	defer plain.Close()
	pb := bufio.NewReaderSize(plain, 1024)
	head, _ := pb.Peek(512)
	if len(head) < 512 || string(head[257:262]) != "ustar" {
		_ = comp
		return false, nil
	}
	host, err := c.target(dest)
	if err != nil {
		return true, err
	}
	if err := c.mkdirs(dest); err != nil {
		return true, err
	}
	if _, err := layertar.Extract(c.ctx, pb, host, layertar.Options{NoDiffID: true}); err != nil {
		return true, err
	}
	return true, nil
}

// mkdirs makes the folder p and its missing parents (root-owned, 0755;
// p itself with the copy's owner).
func (c *copier) mkdirs(p string) error {
	p = path.Clean("/" + p)
	if p == "/" {
		return nil
	}
	host, err := c.target(p)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(host); err == nil {
		if !fi.IsDir() {
			return errdefs.InvalidArgument("%s exists and is not a folder", p)
		}
		return nil
	}
	if err := c.mkdirs(path.Dir(p)); err != nil {
		return err
	}
	host, err = c.target(p)
	if err != nil {
		return err
	}
	if err := os.Mkdir(host, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return os.Lchown(host, c.uid, c.gid)
}

// tree copies the content of folder src into dest.
func (c *copier) tree(src, dest string) error {
	if err := c.mkdirs(dest); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := c.ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		to := path.Join(dest, filepath.ToSlash(rel))
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			host, err := c.target(to)
			if err != nil {
				return err
			}
			if err := os.Mkdir(host, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			return c.setMeta(host, fi)
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			host, err := c.target(path.Dir(to))
			if err != nil {
				return err
			}
			host = filepath.Join(host, path.Base(to))
			_ = os.RemoveAll(host)
			if err := os.Symlink(link, host); err != nil {
				return err
			}
			return os.Lchown(host, c.uid, c.gid)
		case fi.Mode().IsRegular():
			return c.file(func() (io.ReadCloser, error) { return os.Open(p) }, fi, to)
		}
		return nil // devices, fifos and sockets are not copied
	})
}

// treeIndex copies the content of folder top of the context's index into
// dest, as tree copies a folder of the disk: the files' content from the
// spool, their modes and times from the index.
func (c *copier) treeIndex(x *ctxIndex, top, dest string) error {
	if err := c.mkdirs(dest); err != nil {
		return err
	}
	for _, n := range x.subtree(top) {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		rel := n
		if top != "" {
			rel = strings.TrimPrefix(n, top+"/")
		}
		to := path.Join(dest, rel)
		e := x.entries[n]
		switch {
		case e.mode.IsDir():
			host, err := c.target(to)
			if err != nil {
				return err
			}
			if err := os.Mkdir(host, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if err := c.setMeta(host, x.info(n)); err != nil {
				return err
			}
		case e.mode&fs.ModeSymlink != 0:
			host, err := c.target(path.Dir(to))
			if err != nil {
				return err
			}
			host = filepath.Join(host, path.Base(to))
			_ = os.RemoveAll(host)
			if err := os.Symlink(e.link, host); err != nil {
				return err
			}
			if err := os.Lchown(host, c.uid, c.gid); err != nil {
				return err
			}
		case e.mode.IsRegular():
			if err := c.file(x.opener(n), x.info(n), to); err != nil {
				return err
			}
		}
	}
	return nil
}

// file copies the regular file open opens to dest, with the mode and
// time of fi (nil: those of the opened file).
func (c *copier) file(open func() (io.ReadCloser, error), fi fs.FileInfo, dest string) error {
	if err := c.mkdirs(path.Dir(dest)); err != nil {
		return err
	}
	dir, err := c.target(path.Dir(dest))
	if err != nil {
		return err
	}
	host := filepath.Join(dir, path.Base(dest))
	if fi, err := os.Lstat(host); err == nil && !fi.Mode().IsRegular() {
		if err := os.RemoveAll(host); err != nil {
			return err
		}
	}
	in, err := open()
	if err != nil {
		return err
	}
	defer in.Close()
	if fi == nil {
		st, ok := in.(interface{ Stat() (fs.FileInfo, error) })
		if !ok {
			return errors.New("copy: no file information")
		}
		if fi, err = st.Stat(); err != nil {
			return err
		}
	}
	out, err := os.OpenFile(host, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	var src io.Reader = in
	if sf, ok := in.(*spoolFile); ok {
		src = sf.content()
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return c.setMeta(host, fi)
}

// setMeta gives host the copy's owner, the source's mode (or --chmod's)
// and its modification time.
func (c *copier) setMeta(host string, fi fs.FileInfo) error {
	if err := os.Lchown(host, c.uid, c.gid); err != nil {
		return err
	}
	mode := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if c.mode != nil {
		mode = *c.mode
	}
	if err := os.Chmod(host, toUnixMode(mode)); err != nil {
		return err
	}
	return os.Chtimes(host, fi.ModTime(), fi.ModTime())
}

// toUnixMode keeps the permission and special bits os.Chmod takes.
func toUnixMode(m fs.FileMode) fs.FileMode {
	out := m & fs.ModePerm
	if m&0o4000 != 0 || m&fs.ModeSetuid != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 || m&fs.ModeSetgid != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 || m&fs.ModeSticky != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// parseChown reads --chown's user[:group], numbers or names of the
// image's /etc/passwd and /etc/group; "" is 0:0.
func parseChown(root, spec string) (int, int, error) {
	if spec == "" {
		return 0, 0, nil
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	uid, ugid, err := lookupID(root, "/etc/passwd", user)
	if err != nil {
		return 0, 0, err
	}
	gid := uid
	if ugid >= 0 {
		gid = ugid
	}
	if hasGroup {
		if gid, _, err = lookupID(root, "/etc/group", group); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

// lookupID returns the id of name in the passwd or group file of root
// (and, for a user, the user's primary group; -1 for a number).
func lookupID(root, file, name string) (int, int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, -1, nil
	}
	p, err := securejoin.SecureJoin(root, file)
	if err != nil {
		return 0, 0, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, 0, errdefs.InvalidArgument("--chown=%s: the image has no %s to look the name up in", name, file)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == name {
			id, err := strconv.Atoi(f[2])
			if err != nil {
				break
			}
			g := -1
			if len(f) >= 4 && file == "/etc/passwd" {
				if gg, err := strconv.Atoi(f[3]); err == nil {
					g = gg
				}
			}
			return id, g, nil
		}
	}
	return 0, 0, errdefs.InvalidArgument("--chown=%s: no such name in the image's %s", name, file)
}
