package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/opencontainers/go-digest"

	"example.org/ctr/engine"
	"example.org/ctr/image"
	"example.org/ctr/internal/errdefs"
)

// BuildRequest is the env of the build job: POST /build's query. The
// context tar is the job's stdin; JSON messages go to its stdout.
type BuildRequest struct {
	// Dockerfile is the Dockerfile's path in the context.
	Dockerfile string `env:"dockerfile"`
	// Tags name the image (name:tag), several allowed.
	Tags []string `env:"t"`
	// Quiet prints only the image id (and the output of a failing step).
	Quiet bool `env:"q"`
	// NoCache builds every step again.
	NoCache bool `env:"nocache"`
	// Remove removes the intermediate containers of successful steps
	// (docker's default: true); ForceRemove those of failed steps too.
	Remove      *bool `env:"rm"`
	ForceRemove bool  `env:"forcerm"`
	// BuildArgs are --build-arg values (JSON object; a null value takes
	// the daemon's environment, as docker).
	BuildArgs map[string]*string `env:"buildargs"`
	// Labels are added to the image (JSON object).
	Labels map[string]string `env:"labels"`
	// Target is the stage to build; "" the last.
	Target string `env:"target"`
	// NetworkMode is the network of RUN's containers.
	NetworkMode string `env:"networkmode"`
	// Platform must be this host's: ctr builds natively only.
	Platform string `env:"platform"`
	// Squash, Remote, Version "2" (BuildKit) and outputs are refused.
	Squash  bool   `env:"squash"`
	Remote  string `env:"remote"`
	Version string `env:"version"`
	Outputs string `env:"outputs"`
	// CacheFrom names images whose history and layers are cache sources
	// besides the daemon's own cache (see cachefrom.go); one that is not
	// here is skipped.
	CacheFrom []string `env:"cachefrom"`
	// Pull pulls the FROM images first (with the pull job, when this
	// ctrd has one); an image that is not here is pulled anyway.
	Pull string `env:"pull"`
	// The resources, security options, extra hosts and cgroup parent of
	// RUN's containers, as docker build's flags.
	Memory       int64               `env:"memory"`
	MemorySwap   int64               `env:"memswap"`
	CPUShares    int64               `env:"cpushares"`
	CPUSetCPUs   string              `env:"cpusetcpus"`
	CPUSetMems   string              `env:"cpusetmems"`
	CPUPeriod    int64               `env:"cpuperiod"`
	CPUQuota     int64               `env:"cpuquota"`
	ShmSize      int64               `env:"shmsize"`
	ExtraHosts   []string            `env:"extrahosts"`
	SecurityOpt  []string            `env:"securityopt"`
	Ulimits      []*container.Ulimit `env:"ulimits"`
	CgroupParent string              `env:"cgroupparent"`
	// Isolation must be "" or "default" (Linux has no other).
	Isolation string `env:"isolation"`
	// RegistryConfig is the X-Registry-Config header: the client's
	// credentials by registry, which the pulls of FROM and COPY --from
	// use (registryauth.go). Session and BuildID are accepted and not
	// used.
	RegistryConfig string `env:"registry_config"`
	Session        string `env:"session"`
	BuildID        string `env:"buildid"`
}

func (s *Service) jobBuild(ctx context.Context, job *engine.Job) error {
	var req BuildRequest
	if err := job.Decode(&req); err != nil {
		return err
	}
	if len(job.Args) != 0 {
		return errdefs.InvalidArgument("usage: build (the context tar on stdin)")
	}
	out := &messages{out: job.Stdout, quiet: req.Quiet}
	id, err := s.Build(ctx, &req, job.Stdin, out)
	if err != nil {
		out.flushQuiet()
		return err
	}
	if req.Quiet {
		out.force(id + "\n")
	}
	job.Reply(BuildReply{ID: id})
	return nil
}

// BuildReply is the build job's reply (D-Bus Build's Result; over HTTP
// the id comes in the stream's aux message).
type BuildReply struct {
	ID string `json:"id"`
}

// messages writes a build's JSON messages; with quiet, the stream
// lines are held back (and written only if the build fails).
type messages struct {
	out   io.Writer
	quiet bool
	held  bytes.Buffer
}

func (m *messages) send(msg jsonstream.Message) {
	b, _ := json.Marshal(msg)
	b = append(b, '\n')
	if m.quiet && msg.Stream != "" {
		m.held.Write(b)
		return
	}
	_, _ = m.out.Write(b)
	if f, ok := m.out.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// printf sends a stream line.
func (m *messages) printf(format string, args ...any) {
	m.send(jsonstream.Message{Stream: fmt.Sprintf(format, args...)})
}

func (m *messages) force(s string) {
	q := m.quiet
	m.quiet = false
	m.printf("%s", s)
	m.quiet = q
}

func (m *messages) flushQuiet() {
	if m.quiet && m.held.Len() > 0 {
		_, _ = m.out.Write(m.held.Bytes())
		m.held.Reset()
	}
}

// Write sends p as a stream message (RUN's output).
func (m *messages) Write(p []byte) (int, error) {
	m.send(jsonstream.Message{Stream: string(p)})
	return len(p), nil
}

// Build builds the image req describes from the context tar r, writing
// the steps to out, and returns the image's id. Bad input (a context that
// is not a tar, a Dockerfile that does not parse, an unknown target, an
// option ctr does not do) is an InvalidArgument or NotImplemented error
// before anything is written; a step that fails ends the build with its
// error.
func (s *Service) Build(ctx context.Context, req *BuildRequest, r io.Reader, out *messages) (string, error) {
	switch {
	case req.Squash:
		return "", errdefs.NotImplemented("squash is not supported by ctr's builder")
	case req.Remote != "":
		return "", errdefs.NotImplemented("remote build contexts (%s) are not supported by ctr's builder: send the context as a tar", req.Remote)
	case req.Version == "2":
		return "", errdefs.NotImplemented("BuildKit (version=2) is not supported by ctr: use the classic builder (DOCKER_BUILDKIT=0)")
	case req.Outputs != "" && req.Outputs != "null" && req.Outputs != "[]":
		return "", errdefs.NotImplemented("build outputs are not supported by ctr's builder")
	case req.Isolation != "" && req.Isolation != "default":
		return "", errdefs.InvalidArgument("isolation %q: Linux has the default isolation only", req.Isolation)
	}
	if err := checkPlatform(req.Platform); err != nil {
		return "", err
	}
	auths, err := parseRegistryConfig(req.RegistryConfig)
	if err != nil {
		return "", err
	}
	var tags []reference.NamedTagged
	for _, t := range req.Tags {
		ref, err := image.ParseTag(t)
		if err != nil {
			return "", errdefs.InvalidArgument("invalid tag %q: %v", t, err)
		}
		tags = append(tags, ref)
	}
	dir, err := os.MkdirTemp(s.tmpDir(), "context-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bc, err := readContext(ctx, r, dir)
	if err != nil {
		return "", err
	}
	name := req.Dockerfile
	if name == "" {
		name = "Dockerfile"
	}
	df, err := bc.readFile(name)
	if err != nil {
		return "", errdefs.InvalidArgument("Cannot locate specified Dockerfile: %s", name)
	}
	if err := bc.ignore(name, ".dockerignore"); err != nil {
		return "", err
	}
	b, err := s.plan(req, df)
	if err != nil {
		return "", err
	}
	b.ctx = bc
	b.out = out
	b.tags = tags
	b.auths = auths
	if !req.NoCache {
		if err := b.loadCacheSources(ctx); err != nil {
			return "", err
		}
	}
	id, err := b.run(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range tags {
		if _, err := s.opts.Images.Tag(ctx, id, t); err != nil {
			return "", err
		}
	}
	out.send(jsonstream.Message{Aux: auxID(id)})
	out.printf("Successfully built %s\n", image.ShortID(digest.Digest(id)))
	for _, t := range tags {
		out.printf("Successfully tagged %s\n", reference.FamiliarString(t))
	}
	return id, nil
}

func auxID(id string) *json.RawMessage {
	b, _ := json.Marshal(map[string]string{"ID": id})
	raw := json.RawMessage(b)
	return &raw
}

// checkPlatform accepts "" and this host's platform only.
func checkPlatform(p string) error {
	if p == "" {
		return nil
	}
	osName, arch, _ := strings.Cut(strings.ToLower(p), "/")
	arch, _, _ = strings.Cut(arch, "/")
	if osName != "linux" || (arch != "" && arch != runtime.GOARCH) {
		return errdefs.NotImplemented("platform %q: ctr builds for linux/%s only", p, runtime.GOARCH)
	}
	return nil
}

// build is one build in progress.
type build struct {
	s        *Service
	req      *BuildRequest
	ctx      *buildContext
	out      *messages
	tags     []reference.NamedTagged
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
	// last is the index of the stage to build.
	last int
	// steps counts the instructions of the stages built, for "Step N/M".
	steps, step int
	// done are the images of the stages built, by index.
	done []string
	// used are the build args some ARG declared.
	used map[string]bool
	// sources are the cachefrom images.
	sources []*cacheSource
	// auths are the client's credentials for the pulls.
	auths registryConfig
}

// plan parses the Dockerfile and picks the stages to build.
func (s *Service) plan(req *BuildRequest, df []byte) (*build, error) {
	res, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		return nil, errdefs.InvalidArgument("%s", parseError(err))
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, errdefs.InvalidArgument("%s", parseError(err))
	}
	if len(stages) == 0 {
		return nil, errdefs.InvalidArgument("the Dockerfile has no FROM instruction")
	}
	b := &build{s: s, req: req, stages: stages, metaArgs: metaArgs, escape: res.EscapeToken, last: len(stages) - 1, used: map[string]bool{}}
	if req.Target != "" {
		b.last = -1
		for i, st := range stages {
			if strings.EqualFold(st.Name, req.Target) {
				b.last = i
				break
			}
		}
		if b.last < 0 {
			return nil, errdefs.InvalidArgument("failed to reach build target %s in Dockerfile", req.Target)
		}
	}
	if len(req.Labels) > 0 {
		keys := slices.Sorted(mapsKeys(req.Labels))
		for _, k := range keys {
			b.stages[b.last].AddCommand(instructions.NewLabelCommand(k, req.Labels[k], true))
		}
	}
	for i := 0; i <= b.last; i++ {
		b.steps += 1 + len(b.stages[i].Commands)
	}
	b.done = make([]string, len(stages))
	return b, nil
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// parseError gives a parse error with its line when buildkit's error
// carries one but its message does not say it.
func parseError(err error) string {
	msg := err.Error()
	var le *parser.LocationError
	if errors.As(err, &le) && !strings.Contains(msg, "line") && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		return fmt.Sprintf("dockerfile parse error on line %d: %s", le.Locations[0][0].Start.Line, msg)
	}
	return msg
}

// predefinedArgs are the build args every Dockerfile may use without an
// ARG: docker's proxy variables and the platform ones.
func predefinedArgs() map[string]string {
	plat := "linux/" + runtime.GOARCH
	return map[string]string{
		"TARGETPLATFORM": plat, "TARGETOS": "linux", "TARGETARCH": runtime.GOARCH, "TARGETVARIANT": "",
		"BUILDPLATFORM": plat, "BUILDOS": "linux", "BUILDARCH": runtime.GOARCH, "BUILDVARIANT": "",
	}
}

var proxyArgs = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

// buildArg returns the value the build gives arg k, if it gives one.
func (b *build) buildArg(k string) (string, bool) {
	v, ok := b.req.BuildArgs[k]
	if !ok {
		return "", false
	}
	if v == nil {
		return os.LookupEnv(k)
	}
	return *v, true
}

// run builds the stages up to the target and returns the last one's
// image.
func (b *build) run(ctx context.Context) (string, error) {
	// The meta args (before the first FROM) are seen by FROM lines and
	// by a stage's ARG that names them without a value.
	meta := predefinedArgs()
	for _, a := range b.metaArgs {
		for _, kv := range a.Args {
			b.used[kv.Key] = true
			v, given := b.buildArg(kv.Key)
			if !given {
				if kv.Value == nil {
					continue
				}
				ex, err := b.expand(*kv.Value, envOf(meta))
				if err != nil {
					return "", err
				}
				v = ex
			}
			meta[kv.Key] = v
		}
	}
	for i := 0; i <= b.last; i++ {
		id, err := b.runStage(ctx, i, meta)
		if err != nil {
			return "", err
		}
		b.done[i] = id
	}
	var unused []string
	for k := range b.req.BuildArgs {
		if !b.used[k] && !slices.Contains(proxyArgs, k) {
			if _, pre := predefinedArgs()[k]; !pre {
				unused = append(unused, k)
			}
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		b.out.printf("[Warning] One or more build-args [%s] were not consumed\n", strings.Join(unused, " "))
	}
	return b.done[b.last], nil
}

func envOf(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// expand expands the variables of word with env (k=v, the later wins).
func (b *build) expand(word string, env []string) (string, error) {
	lex := shell.NewLex(b.escape)
	s, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(env))
	return s, err
}

// expandRaw expands the variables of a heredoc's content, keeping its
// quotes and escapes as they are.
func (b *build) expandRaw(word string, env []string) (string, error) {
	lex := shell.NewLex(b.escape)
	lex.RawQuotes = true
	lex.RawEscapes = true
	s, _, err := lex.ProcessWord(word, shell.EnvsFromSlice(env))
	return s, err
}

// stage is the state of the stage being built.
type stage struct {
	index int
	image string // id, "" for scratch
	cfg   dockerspec.DockerOCIImageConfig
	// args are the ARGs declared in the stage, with their values, in
	// order of declaration.
	args   []string
	meta   map[string]string
	cmdSet bool
	// author is MAINTAINER's, the image's author.
	author string
}

// env is what an instruction's variables expand against: the stage's
// args, then its image's env (ENV wins over ARG).
func (st *stage) env() []string {
	return append(slices.Clone(st.args), st.cfg.Env...)
}

// argEnv returns the stage's args that no ENV overrides, "k=v" sorted:
// RUN's environment beyond the image's, and part of its cache key.
func (st *stage) argEnv() []string {
	var out []string
	for _, kv := range st.args {
		k, _, _ := strings.Cut(kv, "=")
		if !hasEnv(st.cfg.Env, k) {
			out = setKV(out, kv)
		}
	}
	sort.Strings(out)
	return out
}

func hasEnv(env []string, k string) bool {
	for _, kv := range env {
		if kk, _, _ := strings.Cut(kv, "="); kk == k {
			return true
		}
	}
	return false
}

func setKV(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	for i, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

func (b *build) stepLine(text string) {
	b.step++
	b.out.printf("Step %d/%d : %s\n", b.step, b.steps, text)
}

// runStage runs stage i's FROM and instructions.
func (b *build) runStage(ctx context.Context, i int, meta map[string]string) (string, error) {
	spec := b.stages[i]
	b.stepLine(spec.SourceCode)
	base, err := b.expand(spec.BaseName, envOf(meta))
	if err != nil {
		return "", errdefs.InvalidArgument("FROM %s: %v", spec.BaseName, err)
	}
	if spec.Platform != "" {
		p, err := b.expand(spec.Platform, envOf(meta))
		if err != nil {
			return "", errdefs.InvalidArgument("FROM --platform=%s: %v", spec.Platform, err)
		}
		if err := checkPlatform(p); err != nil {
			return "", err
		}
	}
	st := &stage{index: i, meta: meta}
	if err := b.from(ctx, st, base); err != nil {
		return "", err
	}
	if st.image == "" {
		b.out.printf(" ---> \n")
	} else {
		b.out.printf(" ---> %s\n", image.ShortID(digest.Digest(st.image)))
	}
	// The base image's ONBUILD triggers run first, then go.
	if triggers := st.cfg.OnBuild; len(triggers) > 0 {
		st.cfg.OnBuild = nil
		b.out.printf("# Executing %d build trigger", len(triggers))
		if len(triggers) > 1 {
			b.out.printf("s")
		}
		b.out.printf("\n")
		for _, t := range triggers {
			cmd, err := parseTrigger(t)
			if err != nil {
				return "", err
			}
			if err := b.dispatch(ctx, st, cmd); err != nil {
				return "", err
			}
		}
	}
	for _, cmd := range spec.Commands {
		b.stepLine(commandText(cmd))
		if err := b.dispatch(ctx, st, cmd); err != nil {
			return "", err
		}
		if st.image == "" {
			b.out.printf(" ---> \n")
		} else {
			b.out.printf(" ---> %s\n", image.ShortID(digest.Digest(st.image)))
		}
	}
	if st.image == "" {
		// FROM scratch and nothing else: an empty image.
		id, err := b.commitConfig(ctx, st, "", "")
		if err != nil {
			return "", err
		}
		st.image = id
	}
	return st.image, nil
}

func commandText(cmd instructions.Command) string {
	if s, ok := cmd.(fmt.Stringer); ok {
		return s.String()
	}
	return strings.ToUpper(cmd.Name())
}

// parseTrigger reads an ONBUILD trigger as an instruction.
func parseTrigger(t string) (instructions.Command, error) {
	res, err := parser.Parse(strings.NewReader(t))
	if err != nil || len(res.AST.Children) != 1 {
		return nil, errdefs.InvalidArgument("ONBUILD trigger %q does not parse: %v", t, err)
	}
	cmd, err := instructions.ParseCommand(res.AST.Children[0])
	if err != nil {
		return nil, errdefs.InvalidArgument("ONBUILD trigger %q: %v", t, err)
	}
	switch strings.ToUpper(cmd.Name()) {
	case "ONBUILD", "FROM", "MAINTAINER":
		return nil, errdefs.InvalidArgument("ONBUILD trigger %q: %s is not allowed as a trigger", t, strings.ToUpper(cmd.Name()))
	}
	return cmd, nil
}

// from sets the stage's base: scratch, an earlier stage, or an image of
// the store.
func (b *build) from(ctx context.Context, st *stage, base string) error {
	if strings.EqualFold(base, "scratch") {
		return nil
	}
	id := ""
	for j := 0; j < st.index; j++ {
		if b.stages[j].Name != "" && strings.EqualFold(b.stages[j].Name, base) {
			id = b.done[j]
		}
	}
	if id == "" {
		if pullAlways(b.req.Pull) {
			if _, ok := b.s.eng.Lookup("pull"); ok {
				if err := b.pull(ctx, base); err != nil {
					return err
				}
			}
		}
		img, err := b.s.opts.Images.Get(ctx, base)
		if errdefs.IsNotFound(err) {
			if err := b.pull(ctx, base); err != nil {
				return err
			}
			img, err = b.s.opts.Images.Get(ctx, base)
		}
		if err != nil {
			return err
		}
		id = img.ID.String()
	}
	st.image = id
	cfg, err := b.s.imageConfig(id)
	if err != nil {
		return err
	}
	st.cfg = cfg
	return nil
}

// pullAlways reads the pull parameter ("1", "true", or a platform).
func pullAlways(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	return v != "" && v != "0" && v != "false"
}

// pull fetches base with the engine's pull job, its progress in the
// build's stream; without one, base is NotFound.
func (b *build) pull(ctx context.Context, base string) error {
	if _, ok := b.s.eng.Lookup("pull"); !ok {
		return errdefs.NotFound("No such image: %s", base)
	}
	ref, err := reference.ParseNormalizedNamed(base)
	if err != nil {
		return errdefs.InvalidArgument("FROM %s: %v", base, err)
	}
	ref = reference.TagNameOnly(ref)
	job := b.s.eng.Job("pull", reference.FamiliarName(ref))
	if t, ok := ref.(reference.Tagged); ok {
		job.Env.Set("tag", t.Tag())
	}
	if a := b.auths.auth(ref); a != "" {
		job.Env.Set("auth", a)
	}
	// The pull's messages go to the build's stream, which its end must
	// not close.
	_ = job.Stdout.Add(keepOpen{b.out.out})
	return job.Run(ctx)
}

// keepOpen writes to w and hides its Close (and flushes it when it
// flushes).
type keepOpen struct{ w io.Writer }

func (k keepOpen) Write(p []byte) (int, error) { return k.w.Write(p) }

func (k keepOpen) Flush() {
	if f, ok := k.w.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// imageConfig reads the run configuration of image id.
func (s *Service) imageConfig(id string) (dockerspec.DockerOCIImageConfig, error) {
	raw, err := s.opts.Images.Config(digest.Digest(id))
	if err != nil {
		return dockerspec.DockerOCIImageConfig{}, err
	}
	var img dockerspec.DockerOCIImage
	if err := json.Unmarshal(raw, &img); err != nil {
		return dockerspec.DockerOCIImageConfig{}, fmt.Errorf("image %s: config: %w", id, err)
	}
	return img.Config, nil
}
