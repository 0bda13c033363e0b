package cli

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/spf13/cobra"

	"example.org/ctr/client"
	"example.org/ctr/internal/errdefs"
	"example.org/ctr/layertar"
)

// splitCpArg reads a cp argument: "CONTAINER:PATH" or a local path (one
// that starts with / or . is always local, as the docker CLI reads it).
func splitCpArg(arg string) (ctr, p string) {
	if strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok {
		return "", arg
	}
	return ctr, p
}

func newCpCmd(g *globals) *cobra.Command {
	var archive bool
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  ctrctl cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Long: "Copy files/folders between a container and the local filesystem. '-' is a tar stream on\n" +
			"stdin or stdout. Paths in the container are resolved inside it: no link leads out.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcCtr, src := splitCpArg(args[0])
			dstCtr, dst := splitCpArg(args[1])
			switch {
			case srcCtr != "" && dstCtr != "":
				return usagef(cmd, "copying between containers is not supported")
			case srcCtr == "" && dstCtr == "":
				return usagef(cmd, "must specify at least one container source")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			if srcCtr != "" {
				return copyFrom(cmd, c, srcCtr, src, dst)
			}
			return copyTo(cmd, c, src, dstCtr, dst, archive)
		},
	}
	cmd.Flags().BoolVarP(&archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	cmd.Flags().BoolP("follow-link", "L", false, "Always follow symbol link in SRC_PATH (not supported yet)")
	return cmd
}

// copyFrom copies a container's path to dst ("-": a tar stream on stdout).
func copyFrom(cmd *cobra.Command, c *client.Client, id, src, dst string) error {
	rc, ps, err := c.CopyFromContainer(cmd.Context(), id, src)
	if err != nil {
		return err
	}
	defer rc.Close()
	if dst == "-" {
		_, err := io.Copy(cmd.OutOrStdout(), rc)
		return err
	}
	// Into an existing folder under its own name; else as dst.
	dir, name := dst, ""
	if st, err := os.Stat(dst); err != nil || !st.IsDir() {
		dir, name = filepath.Dir(dst), filepath.Base(dst)
		if _, err := os.Stat(dir); err != nil {
			return errdefs.NotFound("destination folder %s: %v", dir, err)
		}
	}
	return untarLocal(rc, dir, ps.Name, name)
}

// untarLocal writes the tar stream r into dir, its top entry top renamed
// to name (if not ""); every name stays inside dir.
func untarLocal(r io.Reader, dir, top, name string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		n := strings.TrimSuffix(hdr.Name, "/")
		if name != "" && top != "." {
			if n == top {
				n = name
			} else if rest, ok := strings.CutPrefix(n, top+"/"); ok {
				n = path.Join(name, rest)
			}
		}
		target, err := securejoin.SecureJoin(dir, n)
		if err != nil {
			return err
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			_ = os.Chmod(target, mode)
		case tar.TypeReg:
			_ = os.Remove(target)
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = os.Remove(target)
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
			continue
		default:
			continue // devices, fifos, hard links: not copied out
		}
		_ = os.Chtimes(target, time.Now(), hdr.ModTime)
	}
}

// copyTo copies src ("-": a tar stream on stdin) into a container's path.
func copyTo(cmd *cobra.Command, c *client.Client, src, id, dst string, archive bool) error {
	opts := client.CopyOptions{NoOverwriteDirNonDir: true, CopyUIDGID: archive}
	if src == "-" {
		return c.CopyToContainer(cmd.Context(), id, dst, cmd.InOrStdin(), opts)
	}
	if _, err := os.Lstat(src); err != nil {
		return err
	}
	// Into an existing folder under the source's name; else as dst in
	// dst's folder.
	dir, name := dst, filepath.Base(src)
	if ps, err := c.ContainerStatPath(cmd.Context(), id, dst); err != nil || !ps.Mode.IsDir() {
		if err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		if strings.HasSuffix(dst, "/") {
			return errdefs.NotFound("destination folder %s does not exist in the container", dst)
		}
		dir, name = path.Dir(dst), path.Base(dst)
	}
	pr, pw := io.Pipe()
	go func() {
		tw := layertar.NewWriter(pw, layertar.WriteOptions{})
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			entry := name
			if rel != "." {
				entry = path.Join(name, filepath.ToSlash(rel))
			}
			return tw.Add(p, entry)
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	err := c.CopyToContainer(cmd.Context(), id, dir, pr, opts)
	pr.Close()
	if err != nil {
		return fmt.Errorf("copy %s to %s:%s: %w", src, id, dst, err)
	}
	return nil
}

func newExportCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export [OPTIONS] CONTAINER",
		Short: "Export a container's filesystem as a tar archive",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			rc, err := c.ContainerExport(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer rc.Close()
			var w io.Writer = cmd.OutOrStdout()
			if output != "" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			_, err = io.Copy(w, rc)
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Write to a file, instead of STDOUT")
	return cmd
}

func newDiffCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "diff CONTAINER",
		Short: "Inspect changes to files or directories on a container's filesystem",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			changes, err := c.ContainerDiff(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, ch := range changes {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", ch.Kind, ch.Path)
			}
			return nil
		},
	}
}

// fileCmds are cp, export and diff.
func fileCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{newCpCmd(g), newExportCmd(g), newDiffCmd(g)}
}
