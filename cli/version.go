package cli

import (
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"

	"github.com/moby/moby/api/types/system"
	"github.com/spf13/cobra"

	"example.org/ctr/api/wire"
	"example.org/ctr/internal/version"
)

// ClientVersion is the client section of `ctrctl version`.
type ClientVersion struct {
	Version    string
	APIVersion string `json:"ApiVersion"`
	GoVersion  string
	GitCommit  string
	BuildTime  string
	Os         string
	Arch       string
}

// VersionInfo is what `ctrctl version --format` formats: .Client and
// .Server (nil when the daemon did not answer).
type VersionInfo struct {
	Client ClientVersion
	Server *system.VersionResponse
}

func newVersionCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the ctrctl and ctrd version information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := newFormatter(cmd, format)
			if err != nil {
				return err
			}
			info := VersionInfo{Client: ClientVersion{
				Version:    version.Version,
				APIVersion: wire.APIVersion,
				GoVersion:  runtime.Version(),
				GitCommit:  version.GitCommit,
				BuildTime:  version.BuildTime,
				Os:         runtime.GOOS,
				Arch:       runtime.GOARCH,
			}}
			var serverErr error
			c, err := g.client()
			if err != nil {
				serverErr = err
			} else {
				defer c.Close()
				v, err := c.Version(cmd.Context())
				if err != nil {
					serverErr = err
				} else {
					info.Server = &v
				}
			}
			out := cmd.OutOrStdout()
			if f != nil {
				if err := f.write(out, info); err != nil {
					return err
				}
			} else {
				printVersion(out, info)
			}
			return serverErr
		},
	}
	addFormatFlag(cmd, &format)
	return cmd
}

// printVersion writes info as the docker CLI lays out `docker version`.
func printVersion(w io.Writer, info VersionInfo) {
	c := info.Client
	fmt.Fprintln(w, "Client:")
	row(w, 1, "Version:", c.Version)
	row(w, 1, "API version:", c.APIVersion)
	row(w, 1, "Go version:", c.GoVersion)
	row(w, 1, "Git commit:", c.GitCommit)
	row(w, 1, "Built:", c.BuildTime)
	row(w, 1, "OS/Arch:", c.Os+"/"+c.Arch)
	s := info.Server
	if s == nil {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, strings.TrimSpace("Server: "+s.Platform.Name))
	fmt.Fprintln(w, " Engine:")
	row(w, 2, "Version:", s.Version)
	apiV := s.APIVersion
	if s.MinAPIVersion != "" {
		apiV += " (minimum version " + s.MinAPIVersion + ")"
	}
	row(w, 2, "API version:", apiV)
	row(w, 2, "Go version:", s.GoVersion)
	row(w, 2, "Git commit:", s.GitCommit)
	row(w, 2, "Built:", s.BuildTime)
	row(w, 2, "OS/Arch:", s.Os+"/"+s.Arch)
	row(w, 2, "Kernel version:", s.KernelVersion)
	row(w, 2, "Experimental:", fmt.Sprint(s.Experimental))
	for _, comp := range s.Components {
		if comp.Name == "Engine" {
			continue
		}
		fmt.Fprintf(w, " %s:\n", comp.Name)
		row(w, 2, "Version:", comp.Version)
		keys := make([]string, 0, len(comp.Details))
		for k := range comp.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			row(w, 2, k+":", comp.Details[k])
		}
	}
}

// row writes an indented "Key:  value" line with the values aligned.
func row(w io.Writer, indent int, key, value string) {
	pad := 19 - indent
	fmt.Fprintf(w, "%s%-*s %s\n", strings.Repeat(" ", indent), pad, key, value)
}
