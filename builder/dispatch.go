package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"

	"example.org/ctr/drivers/graph"
	"example.org/ctr/image"
	"example.org/ctr/internal/errdefs"
)

// dispatch runs one instruction on the stage: its variables expanded
// first (ENV and ARG of the stage), then its effect on the stage's image.
func (b *build) dispatch(ctx context.Context, st *stage, cmd instructions.Command) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansion); ok {
		env := st.env()
		if err := ex.Expand(func(w string) (string, error) { return b.expand(w, env) }); err != nil {
			return errdefs.InvalidArgument("%s: %v", commandText(cmd), err)
		}
	}
	if ex, ok := cmd.(instructions.SupportsSingleWordExpansionRaw); ok {
		// A heredoc's content (COPY <<EOF), unless its name was quoted.
		env := st.env()
		if err := ex.ExpandRaw(func(w string) (string, error) { return b.expandRaw(w, env) }); err != nil {
			return errdefs.InvalidArgument("%s: %v", commandText(cmd), err)
		}
	}
	cfg := &st.cfg
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		var parts []string
		for _, kv := range c.Env {
			cfg.Env = setKV(cfg.Env, kv.Key+"="+kv.Value)
			parts = append(parts, kv.Key+"="+kv.Value)
		}
		return b.configStep(ctx, st, "ENV "+strings.Join(parts, " "))
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		var parts []string
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
			parts = append(parts, fmt.Sprintf("%s=%s", kv.Key, kv.Value))
		}
		return b.configStep(ctx, st, "LABEL "+strings.Join(parts, " "))
	case *instructions.MaintainerCommand:
		st.author = c.Maintainer
		return b.configStep(ctx, st, "MAINTAINER "+c.Maintainer)
	case *instructions.CmdCommand:
		cfg.Cmd = st.commandLine(c.ShellDependantCmdLine)
		st.cmdSet = true
		return b.configStep(ctx, st, "CMD "+jsonList(cfg.Cmd))
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = st.commandLine(c.ShellDependantCmdLine)
		if !st.cmdSet {
			// An ENTRYPOINT resets the CMD the base image set.
			cfg.Cmd = nil
		}
		return b.configStep(ctx, st, "ENTRYPOINT "+jsonList(cfg.Entrypoint))
	case *instructions.ExposeCommand:
		var ports []string
		for _, p := range c.Ports {
			p, err := b.expand(p, st.env())
			if err != nil {
				return errdefs.InvalidArgument("EXPOSE %s: %v", p, err)
			}
			ports = append(ports, strings.Fields(p)...)
		}
		next, err := image.ApplyChanges(*cfg, []string{"EXPOSE " + strings.Join(ports, " ")})
		if err != nil {
			return err
		}
		*cfg = next
		keys := make([]string, 0, len(cfg.ExposedPorts))
		for k := range cfg.ExposedPorts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return b.configStep(ctx, st, "EXPOSE "+strings.Join(keys, " "))
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if v = strings.TrimSpace(v); v == "" {
				return errdefs.InvalidArgument("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
		return b.configStep(ctx, st, "VOLUME "+jsonList(c.Volumes))
	case *instructions.UserCommand:
		cfg.User = c.User
		return b.configStep(ctx, st, "USER "+c.User)
	case *instructions.StopSignalCommand:
		cfg.StopSignal = c.Signal
		return b.configStep(ctx, st, "STOPSIGNAL "+c.Signal)
	case *instructions.HealthCheckCommand:
		cfg.Healthcheck = c.Health
		return b.configStep(ctx, st, "HEALTHCHECK "+healthText(c.Health))
	case *instructions.ShellCommand:
		cfg.Shell = slices.Clone(c.Shell)
		return b.configStep(ctx, st, "SHELL "+jsonList(c.Shell))
	case *instructions.OnbuildCommand:
		expr := strings.TrimSpace(c.Expression)
		if _, err := parseTrigger(expr); err != nil {
			return err
		}
		cfg.OnBuild = append(cfg.OnBuild, expr)
		return b.configStep(ctx, st, "ONBUILD "+expr)
	case *instructions.ArgCommand:
		var parts []string
		for _, kv := range c.Args {
			b.used[kv.Key] = true
			v, ok := b.buildArg(kv.Key)
			if !ok && kv.Value != nil {
				v, ok = *kv.Value, true
			}
			if !ok {
				v, ok = st.meta[kv.Key]
			}
			if ok {
				st.args = setKV(st.args, kv.Key+"="+v)
			}
			parts = append(parts, kv.String())
		}
		return b.configStep(ctx, st, "ARG "+strings.Join(parts, " "))
	case *instructions.WorkdirCommand:
		return b.workdir(ctx, st, c.Path)
	case *instructions.RunCommand:
		return b.runStep(ctx, st, c)
	case *instructions.CopyCommand:
		if c.Link || c.Parents || len(c.ExcludePatterns) > 0 {
			return errdefs.NotImplemented("COPY --link, --parents and --exclude need BuildKit, which ctr does not have")
		}
		return b.copyStep(ctx, st, copySpec{name: "COPY", srcs: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath, chown: c.Chown, chmod: c.Chmod, from: c.From})
	case *instructions.AddCommand:
		if c.Link || len(c.ExcludePatterns) > 0 || c.Checksum != "" || c.KeepGitDir != nil || c.Unpack != nil {
			return errdefs.NotImplemented("ADD --link, --exclude, --checksum, --keep-git-dir and --unpack need BuildKit, which ctr does not have")
		}
		return b.copyStep(ctx, st, copySpec{name: "ADD", add: true, srcs: c.SourcePaths, contents: c.SourceContents, dest: c.DestPath, chown: c.Chown, chmod: c.Chmod})
	}
	return errdefs.NotImplemented("the %s instruction is not supported by ctr's builder", strings.ToUpper(cmd.Name()))
}

func jsonList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return string(b)
}

// healthText is HEALTHCHECK's history line, as docker writes it.
func healthText(h *dockerspec.HealthcheckConfig) string {
	if h == nil || len(h.Test) == 0 {
		return ""
	}
	if h.Test[0] == "NONE" {
		return "NONE"
	}
	return fmt.Sprintf("&{%q %q %q %q %q %d}", h.Test, h.Interval, h.Timeout, h.StartPeriod, h.StartInterval, h.Retries)
}

// commandLine is CMD's or ENTRYPOINT's (or RUN's) argv: the exec form
// as written, the shell form through the stage's SHELL.
func (st *stage) commandLine(c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return slices.Clone(c.CmdLine)
	}
	return append(st.shell(), strings.Join(c.CmdLine, " "))
}

func (st *stage) shell() []string {
	if len(st.cfg.Shell) > 0 {
		return slices.Clone(st.cfg.Shell)
	}
	return []string{"/bin/sh", "-c"}
}

// configStep makes the image of a step that changes the configuration
// only (an empty layer in the history), or takes it from the cache: the
// key is the parent, the resulting configuration and the history line.
func (b *build) configStep(ctx context.Context, st *stage, text string) error {
	createdBy := "/bin/sh -c #(nop)  " + text
	cfgJSON, err := json.Marshal(st.cfg)
	if err != nil {
		return err
	}
	key := stepKey{Parent: st.image, Instruction: "config", Args: cfgJSON, BuildArgs: st.argEnv(), Extra: []string{createdBy, st.author}}
	if hit, err := b.cached(ctx, st, key, createdBy); hit || err != nil {
		return err
	}
	id, err := b.commitConfig(ctx, st, createdBy, "")
	if err != nil {
		return err
	}
	st.image = id
	return b.s.remember(key.key(), id)
}

// cached takes the step's image from the cache if it can: the local
// cache by key, else an image of cachefrom whose next history line is
// createdBy (which the local cache then remembers under key).
func (b *build) cached(ctx context.Context, st *stage, key stepKey, createdBy string) (bool, error) {
	if b.req.NoCache {
		return false, nil
	}
	if id, ok := b.s.lookup(ctx, key.key()); ok {
		if cfg, err := b.s.imageConfig(id); err == nil {
			b.out.printf(" ---> Using cache\n")
			st.image = id
			st.cfg = cfg
			return true, nil
		}
	}
	id, ok, err := b.fromCacheSources(ctx, st, createdBy)
	if err != nil || !ok {
		return false, err
	}
	b.out.printf(" ---> Using cache\n")
	st.image = id
	return true, b.s.remember(key.key(), id)
}

// commitConfig commits the stage's configuration on its image, with no
// new layer.
func (b *build) commitConfig(ctx context.Context, st *stage, createdBy, comment string) (string, error) {
	id, err := b.s.opts.Images.Commit(ctx, image.CommitOptions{Parent: st.image, Config: st.cfg, CreatedBy: createdBy, Comment: comment, Author: st.author})
	return id.String(), err
}

// workdir sets the working folder, and makes it in a layer when the
// image does not have it.
func (b *build) workdir(ctx context.Context, st *stage, p string) error {
	p = st.abs(p)
	st.cfg.WorkingDir = p
	createdBy := "/bin/sh -c #(nop) WORKDIR " + p
	cfgJSON, _ := json.Marshal(st.cfg)
	key := stepKey{Parent: st.image, Instruction: "WORKDIR", Args: cfgJSON, Extra: []string{st.author}}
	if hit, err := b.cached(ctx, st, key, createdBy); hit || err != nil {
		return err
	}
	id, err := b.s.layerStep(ctx, st.image, func(root string) (bool, error) {
		host, err := securejoin.SecureJoin(root, p)
		if err != nil {
			return false, err
		}
		if fi, err := os.Stat(host); err == nil && fi.IsDir() {
			return false, nil
		}
		return true, os.MkdirAll(host, 0o755)
	}, image.CommitOptions{Parent: st.image, Config: st.cfg, CreatedBy: createdBy, Author: st.author})
	if err != nil {
		return err
	}
	st.image = id
	return b.s.remember(key.key(), id)
}

// layerStep runs fn on a writable copy of image parent's files (a graph
// layer of its own) and commits what fn changed as a new layer of opts;
// when fn says it changed nothing, the image has no new layer.
func (s *Service) layerStep(ctx context.Context, parent string, fn func(root string) (bool, error), opts image.CommitOptions) (string, error) {
	var changed bool
	var diff io.Reader
	release, root, id, err := s.view(ctx, parent)
	if err != nil {
		return "", err
	}
	defer release()
	if changed, err = fn(root); err != nil {
		return "", err
	}
	drv := s.opts.Images.Driver()
	if err := drv.Unmount(ctx, id); err != nil {
		return "", err
	}
	if changed {
		differ, ok := drv.(graph.Differ)
		if !ok {
			return "", errdefs.NotImplemented("the %s storage driver cannot diff a layer", drv.Name())
		}
		pr, pw := io.Pipe()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); pw.CloseWithError(differ.Diff(ctx, id, pw)) }()
		defer wg.Wait()
		defer pr.Close()
		diff = pr
	}
	opts.Layer = diff
	img, err := s.opts.Images.Commit(ctx, opts)
	return img.String(), err
}

// view makes a graph layer on image ref's top layer ("" for none),
// mounts it and returns its root; release unmounts and removes it.
func (s *Service) view(ctx context.Context, ref string) (release func(), root, id string, err error) {
	top := ""
	releaseImage := func() {}
	if ref != "" {
		img, rel, err := s.opts.Images.Hold(ctx, ref)
		if err != nil {
			return nil, "", "", err
		}
		top, releaseImage = img.TopLayer, rel
	}
	drv := s.opts.Images.Driver()
	id = "build" + randomHex(28)
	if err := drv.Create(ctx, id, top); err != nil {
		releaseImage()
		return nil, "", "", err
	}
	bg := context.WithoutCancel(ctx)
	release = func() {
		_ = drv.Unmount(bg, id)
		if err := drv.Remove(bg, id); err != nil {
			s.opts.Log.Warn("cannot remove a build layer; the next start removes it", "layer", id, "error", err)
		}
		releaseImage()
	}
	root, err = drv.Mount(ctx, id)
	if err != nil {
		release()
		return nil, "", "", err
	}
	return release, root, id, nil
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// runStep runs a RUN instruction in a container on the stage's image and
// commits the container's changes, or takes the step from the cache.
func (b *build) runStep(ctx context.Context, st *stage, c *instructions.RunCommand) error {
	for _, f := range c.FlagsUsed {
		return errdefs.NotImplemented("RUN --%s needs BuildKit, which ctr does not have", f)
	}
	if st.image == "" {
		return errdefs.InvalidArgument("RUN on an empty image (FROM scratch with no files): there is nothing to run")
	}
	argv := st.commandLine(c.ShellDependantCmdLine)
	if len(c.Files) > 0 {
		// RUN <<EOF … EOF: the heredoc is the script the shell runs.
		h := parser.MustParseHeredoc(strings.Join(c.CmdLine, " "))
		f := c.Files[0]
		if len(c.Files) != 1 || !c.PrependShell || h == nil || h.Name != f.Name || strings.HasPrefix(f.Data, "#!") {
			return errdefs.NotImplemented("this heredoc form of RUN (several heredocs, a heredoc as a file, or a #! script) needs BuildKit, which ctr does not have")
		}
		data := f.Data
		if f.Chomp {
			data = parser.ChompHeredocContent(data)
		}
		argv = append(st.shell(), data)
	}
	args := st.argEnv()
	createdBy := strings.Join(argv, " ")
	if !c.PrependShell {
		createdBy = "/bin/sh -c " + jsonList(argv)
	}
	if len(args) > 0 {
		createdBy = fmt.Sprintf("|%d %s %s", len(args), strings.Join(args, " "), createdBy)
	}
	argvJSON, _ := json.Marshal(argv)
	key := stepKey{Parent: st.image, Instruction: "RUN", Args: argvJSON, BuildArgs: args, Extra: []string{st.author}}
	if hit, err := b.cached(ctx, st, key, createdBy); hit || err != nil {
		return err
	}
	id, err := b.runContainer(ctx, st, argv, args, createdBy)
	if err != nil {
		return err
	}
	st.image = id
	return b.s.remember(key.key(), id)
}

// runContainer runs argv in a new container of the stage's image, its
// output in the build's stream, and commits its changes. The container
// goes once committed (rm), or also after a failure (forcerm); a
// cancelled build always removes it.
func (b *build) runContainer(ctx context.Context, st *stage, argv, args []string, createdBy string) (string, error) {
	eng := b.s.eng
	cfg := &container.Config{
		Image:        st.image,
		Cmd:          argv,
		Entrypoint:   []string{""},
		Env:          args,
		User:         st.cfg.User,
		WorkingDir:   st.cfg.WorkingDir,
		AttachStdout: true,
		AttachStderr: true,
		Healthcheck:  &container.HealthConfig{Test: []string{"NONE"}},
	}
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(b.req.NetworkMode),
		ShmSize:     b.req.ShmSize,
		ExtraHosts:  b.req.ExtraHosts,
		SecurityOpt: b.req.SecurityOpt,
		Resources: container.Resources{
			Memory: b.req.Memory, MemorySwap: b.req.MemorySwap, CPUShares: b.req.CPUShares,
			CpusetCpus: b.req.CPUSetCPUs, CpusetMems: b.req.CPUSetMems, CPUPeriod: b.req.CPUPeriod,
			CPUQuota: b.req.CPUQuota, Ulimits: b.req.Ulimits, CgroupParent: b.req.CgroupParent,
		},
	}
	create := eng.Job("create")
	if err := create.Env.SetJSON("config", cfg); err != nil {
		return "", err
	}
	if err := create.Env.SetJSON("host_config", hc); err != nil {
		return "", err
	}
	if err := create.Run(ctx); err != nil {
		return "", err
	}
	res, _ := create.Result()
	cr, _ := res.(container.CreateResponse)
	if cr.ID == "" {
		return "", errors.New("create gave no container id")
	}
	short := cr.ID[:12]
	b.out.printf(" ---> Running in %s\n", short)
	ok := false
	defer func() {
		if ok && !(b.req.Remove == nil || *b.req.Remove) {
			return
		}
		if !ok && !b.req.ForceRemove && ctx.Err() == nil {
			return // docker keeps a failed step's container
		}
		rm := eng.Job("container_delete", cr.ID)
		rm.Env.Set("force", "true")
		rm.Env.Set("v", "true") // the image's VOLUMEs it got
		if err := rm.Run(context.WithoutCancel(ctx)); err != nil {
			b.s.opts.Log.Warn("cannot remove a build container", "container", cr.ID, "error", err)
			return
		}
		if ctx.Err() == nil {
			b.out.printf("Removing intermediate container %s\n", short)
		}
	}()

	attach := eng.Job("attach", cr.ID)
	attach.Env.Set("stream", "true")
	attach.Env.Set("stdout", "true")
	attach.Env.Set("stderr", "true")
	ready := &readySignal{ch: make(chan struct{})}
	_ = attach.Stdout.Add(ready)
	_ = attach.Stdout.Add(b.out)
	_ = attach.Stderr.Add(b.out)
	attached := make(chan error, 1)
	actx, cancelAttach := context.WithCancel(ctx)
	defer cancelAttach()
	go func() { attached <- attach.Run(actx) }()
	select {
	case <-ready.ch:
	case err := <-attached:
		return "", fmt.Errorf("attach to the build container: %w", err)
	}
	if err := eng.Job("start", cr.ID).Run(ctx); err != nil {
		return "", err
	}
	wait := eng.Job("wait", cr.ID)
	if err := wait.Run(ctx); err != nil {
		return "", err
	}
	wr, _ := wait.Result()
	code := int64(-1)
	if w, okw := wr.(container.WaitResponse); okw {
		code = w.StatusCode
	}
	<-attached
	if code != 0 {
		return "", fmt.Errorf("The command '%s' returned a non-zero code: %d", strings.Join(argv, " "), code)
	}
	snap, err := b.s.opts.Containers.Snapshot(ctx, cr.ID, false)
	if err != nil {
		return "", err
	}
	defer snap.Layer.Close()
	id, err := b.s.opts.Images.Commit(ctx, image.CommitOptions{Parent: st.image, Layer: snap.Layer, Config: st.cfg, CreatedBy: createdBy, Author: st.author})
	if err != nil {
		return "", err
	}
	ok = true
	return id.String(), nil
}

// readySignal closes ch at the first Flush: the attach job flushes its
// stdout once it will see the container's output.
type readySignal struct {
	once sync.Once
	ch   chan struct{}
}

func (r *readySignal) Write(p []byte) (int, error) { return len(p), nil }
func (r *readySignal) Flush()                      { r.once.Do(func() { close(r.ch) }) }

// abs is container path p of the stage, relative to its working folder
// ("/" when it has none) unless absolute, cleaned.
func (st *stage) abs(p string) string {
	if !path.IsAbs(p) {
		base := st.cfg.WorkingDir
		if base == "" {
			base = "/"
		}
		p = path.Join(base, p)
	}
	return path.Clean(p)
}
