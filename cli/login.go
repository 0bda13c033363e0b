package cli

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"example.org/ctr/internal/errdefs"
)

// dockerIndex is how docker names docker.io in its config's auths.
const dockerIndex = "https://index.docker.io/v1/"

// authFile is docker's config.json as far as credentials go: the auths
// map, server → {"auth": base64 of user:password} or an identity token.
// Other keys of the file are kept as they are.
type authFile struct {
	path  string
	raw   map[string]json.RawMessage
	Auths map[string]authEntry
	// CredsStore and CredHelpers name docker credential helpers
	// (docker-credential-NAME), for all registries or per registry.
	CredsStore  string
	CredHelpers map[string]string
}

type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

// ctrAuthPath is ctrctl's credentials file: $XDG_CONFIG_HOME/ctr/auth.json,
// else ~/.config/ctr/auth.json.
func ctrAuthPath() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "ctr", "auth.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".config", "ctr", "auth.json"), nil
}

// dockerAuthPath is docker's own file, read when ctrctl's has nothing.
func dockerAuthPath() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".docker", "config.json")
}

func readAuthFile(path string) (*authFile, error) {
	f := &authFile{path: path, raw: map[string]json.RawMessage{}, Auths: map[string]authEntry{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &f.raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if a, ok := f.raw["auths"]; ok {
		if err := json.Unmarshal(a, &f.Auths); err != nil {
			return nil, fmt.Errorf("%s: auths: %w", path, err)
		}
	}
	if a, ok := f.raw["credsStore"]; ok {
		_ = json.Unmarshal(a, &f.CredsStore)
	}
	if a, ok := f.raw["credHelpers"]; ok {
		_ = json.Unmarshal(a, &f.CredHelpers)
	}
	return f, nil
}

// save writes the file, 0600, through a temporary file and a rename.
func (f *authFile) save() error {
	a, err := json.Marshal(f.Auths)
	if err != nil {
		return err
	}
	f.raw["auths"] = a
	b, err := json.MarshalIndent(f.raw, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".auth-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.path)
}

// serverKey is the auths key of a registry address or of an image
// reference's registry.
func serverKey(s string) string {
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://"), "/")
	switch s {
	case "", "docker.io", "index.docker.io", "index.docker.io/v1", "registry-1.docker.io":
		return dockerIndex
	}
	return s
}

// storedAuth returns the stored credentials of server (an auths key):
// ctrctl's file first, then docker's.
func storedAuth(server string) (user, pass, token string, ok bool) {
	var paths []string
	if p, err := ctrAuthPath(); err == nil {
		paths = append(paths, p)
	}
	paths = append(paths, dockerAuthPath())
	for _, p := range paths {
		f, err := readAuthFile(p)
		if err != nil {
			continue
		}
		if helper := f.CredHelpers[server]; helper != "" || f.CredsStore != "" {
			if helper == "" {
				helper = f.CredsStore
			}
			if u, p, err := credentialHelper(helper, server); err == nil {
				if u == "<token>" {
					return "", "", p, true
				}
				return u, p, "", true
			}
		}
		e, found := f.Auths[server]
		if !found {
			continue
		}
		if e.IdentityToken != "" {
			return "", "", e.IdentityToken, true
		}
		b, err := base64.StdEncoding.DecodeString(e.Auth)
		if err != nil {
			continue
		}
		u, pw, cut := strings.Cut(string(b), ":")
		if cut {
			return u, pw, "", true
		}
	}
	return "", "", "", false
}

// credentialHelper asks docker-credential-NAME for the credentials of
// server (the helper protocol of github.com/docker/docker-credential-helpers).
func credentialHelper(name, server string) (user, secret string, err error) {
	cmd := exec.Command("docker-credential-"+name, "get")
	cmd.Stdin = strings.NewReader(server)
	out, err := cmd.Output()
	if err != nil {
		return "", "", err
	}
	var c struct{ Username, Secret string }
	if err := json.Unmarshal(out, &c); err != nil {
		return "", "", err
	}
	return c.Username, c.Secret, nil
}

// registryAuth is the X-Registry-Auth header for ref's registry from the
// stored credentials; "" for none.
func registryAuth(ref string) string {
	r, err := parseImageRef(ref)
	if err != nil {
		return ""
	}
	server := serverKey(r.domain)
	user, pass, token, ok := storedAuth(server)
	if !ok {
		return ""
	}
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass, "identitytoken": token, "serveraddress": server})
	return base64.URLEncoding.EncodeToString(b)
}

// readSecret reads a line from in without echo when it is a terminal.
func readSecret(in io.Reader, out io.Writer, prompt string) (string, error) {
	fmt.Fprint(out, prompt)
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		fd := int(f.Fd())
		old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err == nil {
			t := *old
			t.Lflag &^= unix.ECHO
			_ = unix.IoctlSetTermios(fd, unix.TCSETS, &t)
			defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old); fmt.Fprintln(out) }()
		}
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func newLoginCmd(g *globals) *cobra.Command {
	var user, password string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "login [OPTIONS] [SERVER]",
		Short: "Log in to a registry",
		Long:  "Log in to a registry (docker.io when SERVER is not given). The credentials are checked by ctrd and kept, 0600, in ~/.config/ctr/auth.json (docker's config.json format).",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := dockerIndex
			if len(args) == 1 {
				server = serverKey(args[0])
			}
			if password != "" && passwordStdin {
				return usagef(cmd, "--password and --password-stdin are mutually exclusive")
			}
			in := cmd.InOrStdin()
			if passwordStdin {
				if user == "" {
					return usagef(cmd, "must provide --username with --password-stdin")
				}
				b, err := io.ReadAll(io.LimitReader(in, 1<<16))
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			if user == "" {
				u, err := readSecret(in, cmd.ErrOrStderr(), "Username: ")
				if err != nil {
					return errdefs.InvalidArgument("login: no username: %v", err)
				}
				user = u
			}
			if password == "" {
				p, err := readSecret(in, cmd.ErrOrStderr(), "Password: ")
				if err != nil {
					return errdefs.InvalidArgument("login: no password: %v", err)
				}
				password = p
			}
			if user == "" || password == "" {
				return usagef(cmd, "login: a username and a password are needed")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			reply, err := c.Login(cmd.Context(), map[string]string{"username": user, "password": password, "serveraddress": server})
			if err != nil {
				return err
			}
			path, err := ctrAuthPath()
			if err != nil {
				return err
			}
			f, err := readAuthFile(path)
			if err != nil {
				return err
			}
			e := authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}
			if reply.IdentityToken != "" {
				e = authEntry{IdentityToken: reply.IdentityToken}
			}
			f.Auths[server] = e
			if err := f.save(); err != nil {
				return fmt.Errorf("login succeeded, but the credentials could not be stored: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), reply.Status)
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "username", "u", "", "Username")
	cmd.Flags().StringVarP(&password, "password", "p", "", "Password (better: --password-stdin)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "Take the password from stdin")
	return cmd
}

func newLogoutCmd(*globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout [SERVER]",
		Short: "Log out from a registry",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			server := dockerIndex
			if len(args) == 1 {
				server = serverKey(args[0])
			}
			path, err := ctrAuthPath()
			if err != nil {
				return err
			}
			f, err := readAuthFile(path)
			if err != nil {
				return err
			}
			if _, ok := f.Auths[server]; !ok {
				fmt.Fprintf(cmd.OutOrStdout(), "Not logged in to %s\n", server)
				return nil
			}
			delete(f.Auths, server)
			if err := f.save(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removing login credentials for %s\n", server)
			return nil
		},
	}
}
