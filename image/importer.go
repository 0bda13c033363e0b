package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"unicode"

	"github.com/distribution/reference"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"example.org/ctr/internal/errdefs"
)

// ImportOptions describe the image Import makes.
type ImportOptions struct {
	// Tag names the image; nil leaves it untagged.
	Tag reference.NamedTagged
	// Changes are Dockerfile instructions applied to the config: CMD,
	// ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
	// WORKDIR.
	Changes []string
	// Message is the history comment; "" gives "Imported from -".
	Message string
	// Progress receives messages while the layer is applied; may be nil.
	Progress Progress
}

// Import makes a one-layer image from a root file system tar (plain,
// gzip or zstd) read from r, with a config built from opts.Changes. A
// broken tar or a bad change is an InvalidArgument error, and leaves
// nothing behind.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (Loaded, error) {
	cfg, err := ApplyChanges(dockerspec.DockerOCIImageConfig{}, opts.Changes)
	if err != nil {
		return Loaded{}, err
	}
	in := s.begin()
	defer in.finish(ctx)
	var prog layerProgress
	if opts.Progress != nil {
		var n int64
		prog = func(k int64) {
			if n += k; n%(4<<20) < k {
				opts.Progress(jsonmessageProgress("Importing", n))
			}
		}
	}
	l, err := in.layer(ctx, "", "", "", r, prog)
	if err != nil {
		return Loaded{}, fmt.Errorf("import: %w", err)
	}
	now := s.now().UTC()
	comment := opts.Message
	if comment == "" {
		comment = "Imported from -"
	}
	img := dockerspec.DockerOCIImage{
		Image: ocispec.Image{
			Created:  &now,
			Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{l.DiffID}},
			History:  []ocispec.History{{Created: &now, Comment: comment}},
		},
		Config: cfg,
	}
	b, err := json.Marshal(img)
	if err != nil {
		return Loaded{}, err
	}
	id, err := in.putBlob(b, "")
	if err != nil {
		return Loaded{}, err
	}
	ni := newImage{ID: id, Created: now, Layers: []layerRecord{l}}
	if opts.Tag != nil {
		ni.Tags = []reference.NamedTagged{opts.Tag}
	}
	res, err := in.commit(ctx, []newImage{ni})
	if err != nil {
		return Loaded{}, err
	}
	return Loaded(res[0]), nil
}

// ApplyChanges applies Dockerfile instructions to an image config, as
// `docker import --change` and `docker commit --change` do. Unknown or
// malformed instructions are InvalidArgument errors.
func ApplyChanges(cfg dockerspec.DockerOCIImageConfig, changes []string) (dockerspec.DockerOCIImageConfig, error) {
	for _, ch := range changes {
		ch = strings.TrimSpace(ch)
		if ch == "" {
			continue
		}
		kw, rest, _ := strings.Cut(ch, " ")
		rest = strings.TrimSpace(rest)
		kw = strings.ToUpper(kw)
		if rest == "" {
			return cfg, errdefs.InvalidArgument("change %q: %s needs an argument", ch, kw)
		}
		switch kw {
		case "CMD":
			cfg.Cmd = commandForm(rest)
		case "ENTRYPOINT":
			cfg.Entrypoint = commandForm(rest)
		case "ENV":
			kvs, err := keyValues(rest, true)
			if err != nil {
				return cfg, errdefs.InvalidArgument("change %q: %v", ch, err)
			}
			for _, kv := range kvs {
				cfg.Env = setEnv(cfg.Env, kv[0], kv[1])
			}
		case "LABEL":
			kvs, err := keyValues(rest, false)
			if err != nil {
				return cfg, errdefs.InvalidArgument("change %q: %v", ch, err)
			}
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			for _, kv := range kvs {
				cfg.Labels[kv[0]] = kv[1]
			}
		case "EXPOSE":
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range strings.Fields(rest) {
				port, err := parsePort(p)
				if err != nil {
					return cfg, errdefs.InvalidArgument("change %q: %v", ch, err)
				}
				cfg.ExposedPorts[port] = struct{}{}
			}
		case "VOLUME":
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			vols := []string{}
			if err := json.Unmarshal([]byte(rest), &vols); err != nil {
				vols = strings.Fields(rest)
			}
			for _, v := range vols {
				cfg.Volumes[v] = struct{}{}
			}
		case "USER":
			cfg.User = rest
		case "WORKDIR":
			cfg.WorkingDir = rest
		case "STOPSIGNAL":
			cfg.StopSignal = rest
		case "ONBUILD":
			cfg.OnBuild = append(cfg.OnBuild, rest)
		default:
			return cfg, errdefs.InvalidArgument("change %q: %s is not a valid change instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)", ch, kw)
		}
	}
	return cfg, nil
}

// commandForm reads CMD and ENTRYPOINT arguments: a JSON array (exec
// form), else a command line run by /bin/sh -c (shell form).
func commandForm(s string) []string {
	if strings.HasPrefix(s, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(s), &argv); err == nil {
			return argv
		}
	}
	return []string{"/bin/sh", "-c", s}
}

// setEnv sets key=value in env, replacing an earlier value.
func setEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// keyValues reads "k=v k2='v 2'" pairs; with legacy, "KEY value with
// spaces" (ENV's old form) too.
func keyValues(s string, legacy bool) ([][2]string, error) {
	words, err := splitWords(s)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("no key=value given")
	}
	if !strings.Contains(words[0], "=") {
		if !legacy {
			return nil, fmt.Errorf("want key=value, got %q", words[0])
		}
		k, v, _ := strings.Cut(strings.TrimSpace(s), " ")
		return [][2]string{{k, strings.TrimSpace(v)}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("want key=value, got %q", w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// splitWords splits s at unquoted blanks, removing double and single
// quotes and backslash escapes as a shell would.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	esc := false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc = true
			inWord = true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote = r
			inWord = true
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	if esc {
		return nil, fmt.Errorf("trailing backslash")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// parsePort reads "80", "80/tcp", "53/udp" and returns "80/tcp" etc.
func parsePort(p string) (string, error) {
	num, proto, ok := strings.Cut(p, "/")
	if !ok {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return "", fmt.Errorf("invalid protocol %q in port %q", proto, p)
	}
	n := 0
	for _, c := range num {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("invalid port %q", p)
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return "", fmt.Errorf("port %q out of range", p)
		}
	}
	if num == "" || n == 0 {
		return "", fmt.Errorf("invalid port %q", p)
	}
	return fmt.Sprintf("%d/%s", n, proto), nil
}

// jsonmessageProgress is a progress message with a byte count and no
// known total.
func jsonmessageProgress(status string, n int64) jsonstream.Message {
	return jsonstream.Message{Status: status, Progress: &jsonstream.Progress{Current: n}}
}

func goarch() string { return runtime.GOARCH }
