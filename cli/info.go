package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/system"
	"github.com/spf13/cobra"
)

func newInfoCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info",
		Short: "Show system-wide information about ctrd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := newFormatter(cmd, format)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			info, err := c.Info(cmd.Context())
			if err != nil {
				return err
			}
			if f != nil {
				return f.write(cmd.OutOrStdout(), info)
			}
			printInfo(cmd.OutOrStdout(), info)
			for _, w := range info.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), w)
			}
			return nil
		},
	}
	addFormatFlag(cmd, &format)
	return cmd
}

// printInfo writes the fields of info that ctrd fills, laid out as
// `docker info` does.
func printInfo(w io.Writer, i system.Info) {
	line := func(indent int, key string, value any) {
		fmt.Fprintf(w, "%s%s: %v\n", strings.Repeat(" ", indent), key, value)
	}
	opt := func(indent int, key, value string) {
		if value != "" {
			line(indent, key, value)
		}
	}
	fmt.Fprintln(w, "Server:")
	line(1, "Containers", i.Containers)
	line(2, "Running", i.ContainersRunning)
	line(2, "Paused", i.ContainersPaused)
	line(2, "Stopped", i.ContainersStopped)
	line(1, "Images", i.Images)
	opt(1, "Server Version", i.ServerVersion)
	opt(1, "Storage Driver", i.Driver)
	for _, kv := range i.DriverStatus {
		line(2, kv[0], kv[1])
	}
	opt(1, "Logging Driver", i.LoggingDriver)
	opt(1, "Cgroup Driver", i.CgroupDriver)
	opt(1, "Cgroup Version", i.CgroupVersion)
	opt(1, "Default Runtime", i.DefaultRuntime)
	opt(1, "Init Binary", i.InitBinary)
	for _, kv := range i.SystemStatus {
		line(1, kv[0], kv[1])
	}
	opt(1, "Kernel Version", i.KernelVersion)
	opt(1, "Operating System", i.OperatingSystem)
	opt(1, "OSType", i.OSType)
	opt(1, "Architecture", i.Architecture)
	line(1, "CPUs", i.NCPU)
	line(1, "Total Memory", units.BytesSize(float64(i.MemTotal)))
	opt(1, "Name", i.Name)
	opt(1, "ID", i.ID)
	opt(1, "Root Dir", i.DockerRootDir)
	line(1, "Debug Mode", i.Debug)
	if len(i.Labels) > 0 {
		fmt.Fprintln(w, " Labels:")
		for _, l := range i.Labels {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	line(1, "Experimental", i.ExperimentalBuild)
	if i.RegistryConfig != nil && len(i.RegistryConfig.Mirrors) > 0 {
		fmt.Fprintln(w, " Registry Mirrors:")
		for _, m := range i.RegistryConfig.Mirrors {
			fmt.Fprintf(w, "  %s\n", m)
		}
	}
	line(1, "Live Restore Enabled", i.LiveRestoreEnabled)
}
