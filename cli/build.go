package cli

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"github.com/spf13/cobra"

	"example.org/ctr/client"
)

func newBuildCmd(g *globals) *cobra.Command {
	var (
		opts      client.BuildOptions
		file      string
		buildArgs []string
		labels    []string
	)
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] PATH|-",
		Short: "Build an image from a Dockerfile",
		Long: "Build an image from a Dockerfile and a context: a folder (its .dockerignore applied) or a tar on stdin (-). " +
			"-f names the Dockerfile (default PATH/Dockerfile; - reads it from stdin with a folder context).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.BuildArgs = map[string]*string{}
			for _, a := range buildArgs {
				k, v, ok := strings.Cut(a, "=")
				if !ok {
					// KEY alone: the value of this environment, as docker.
					if env, set := os.LookupEnv(k); set {
						opts.BuildArgs[k] = &env
					} else {
						opts.BuildArgs[k] = nil
					}
					continue
				}
				opts.BuildArgs[k] = &v
			}
			opts.Labels = map[string]string{}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				opts.Labels[k] = v
			}
			var body io.Reader
			if args[0] == "-" {
				if isTerminal(cmd.InOrStdin()) {
					return usagef(cmd, "the context is read from stdin, but stdin is a terminal")
				}
				if file == "-" {
					return usagef(cmd, "the context and the Dockerfile cannot both come from stdin")
				}
				body = cmd.InOrStdin()
				opts.Dockerfile = file
			} else {
				fi, err := os.Stat(args[0])
				if err != nil {
					return fmt.Errorf("unable to prepare context: %w", err)
				}
				if !fi.IsDir() {
					return usagef(cmd, "unable to prepare context: %s is not a folder", args[0])
				}
				var dfData []byte
				if file == "-" {
					if dfData, err = io.ReadAll(cmd.InOrStdin()); err != nil {
						return err
					}
				}
				name, extra, err := dockerfileIn(args[0], file)
				if err != nil {
					return err
				}
				if dfData != nil {
					extra = dfData
				}
				opts.Dockerfile = name
				pr, pw := io.Pipe()
				go func() { pw.CloseWithError(tarContext(pw, args[0], name, extra)) }()
				defer pr.Close()
				body = pr
			}
			opts.RegistryConfig = registryConfig()
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			p := newProgress(cmd.OutOrStdout(), opts.Quiet)
			sent := &sentReader{r: body}
			if !opts.Quiet {
				sent.done = func(n int64) {
					fmt.Fprintf(cmd.OutOrStdout(), "Sending build context to the daemon  %s\n", humanSize(n))
				}
			}
			id, err := c.ImageBuild(cmd.Context(), sent, opts, func(m jsonstream.Message) {
				if !opts.Quiet {
					p.message(m)
				}
			})
			p.wait()
			if err != nil {
				return err
			}
			if opts.Quiet {
				fmt.Fprintln(cmd.OutOrStdout(), id)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&opts.Tags, "tag", "t", nil, "name and optionally a tag (name:tag), repeatable")
	f.StringVarP(&file, "file", "f", "", "the Dockerfile (default PATH/Dockerfile)")
	f.StringArrayVar(&buildArgs, "build-arg", nil, "a build arg KEY=VALUE (KEY alone: from the environment), repeatable")
	f.StringVar(&opts.Target, "target", "", "the stage to build")
	f.BoolVar(&opts.NoCache, "no-cache", false, "build every step again")
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "print only the image id")
	f.StringArrayVar(&labels, "label", nil, "a label KEY=VALUE for the image, repeatable")
	f.StringVar(&opts.Platform, "platform", "", "the platform (this host's only)")
	f.StringVar(&opts.NetworkMode, "network", "", "the network of RUN's containers")
	f.BoolVar(&opts.ForceRemove, "force-rm", false, "remove the container of a failed step too")
	f.StringArrayVar(&opts.CacheFrom, "cache-from", nil, "an image to take cached steps from, repeatable")
	return cmd
}

// sentReader counts what the context upload read and calls done with
// the count at its end: the line that says the context was sent.
type sentReader struct {
	r    io.Reader
	n    int64
	done func(int64)
}

func (s *sentReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n += int64(n)
	if err == io.EOF && s.done != nil {
		s.done(s.n)
		s.done = nil
	}
	return n, err
}

// dockerfileIn returns the name the Dockerfile file has in the context
// dir, or, when it lies outside it, a new name and its content to add.
func dockerfileIn(dir, file string) (string, []byte, error) {
	if file == "" {
		return "Dockerfile", nil, nil
	}
	if file == "-" {
		return ".dockerfile." + randomName(), nil, nil
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	absFile, err := filepath.Abs(file)
	if err != nil {
		return "", nil, err
	}
	if rel, err := filepath.Rel(absDir, absFile); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return filepath.ToSlash(rel), nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", nil, fmt.Errorf("unable to read the Dockerfile: %w", err)
	}
	return ".dockerfile." + randomName(), b, nil
}

func randomName() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tarContext writes the folder dir as a tar to w, without what its
// .dockerignore excludes (the Dockerfile and .dockerignore always go);
// with extra, the Dockerfile is added under dockerfile.
func tarContext(w io.Writer, dir, dockerfile string, extra []byte) error {
	var pm *patternmatcher.PatternMatcher
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil {
		pats, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf(".dockerignore: %w", err)
		}
		if pm, err = patternmatcher.New(pats); err != nil {
			return fmt.Errorf(".dockerignore: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if pm != nil && rel != dockerfile && rel != ".dockerignore" {
			m, err := pm.MatchesOrParentMatches(rel)
			if err != nil {
				return fmt.Errorf(".dockerignore: %w", err)
			}
			if m {
				if d.IsDir() && !pm.Exclusions() {
					return filepath.SkipDir
				}
				if !d.IsDir() {
					return nil
				}
			}
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() && link == "" {
			return nil // devices, fifos and sockets stay behind
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		hdr.Name = rel
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if extra != nil {
		if err := tw.WriteHeader(&tar.Header{Name: dockerfile, Mode: 0o644, Size: int64(len(extra)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(extra); err != nil {
			return err
		}
	}
	return tw.Close()
}

func newCommitCmd(g *globals) *cobra.Command {
	var opts client.CommitOptions
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Make an image from a container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				opts.Repo, opts.Tag = splitRepoTag(args[1])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			id, err := c.ContainerCommit(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Author, "author", "a", "", "the image's author")
	f.StringVarP(&opts.Comment, "message", "m", "", "the commit message")
	f.StringArrayVarP(&opts.Changes, "change", "c", nil, "apply a Dockerfile instruction to the image (repeatable)")
	f.BoolVarP(&opts.Pause, "pause", "p", true, "pause the container while it is committed")
	return cmd
}
