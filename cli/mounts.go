package cli

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// mountFlags are run's and create's --mount and --volumes-from.
type mountFlags struct {
	mounts, volumesFrom []string
}

func (m *mountFlags) add(fl *pflag.FlagSet) {
	fl.StringArrayVar(&m.mounts, "mount", nil, "Attach a filesystem mount to the container (type=volume|bind|tmpfs,src=…,dst=…,…)")
	fl.StringArrayVar(&m.volumesFrom, "volumes-from", nil, "Mount volumes from the specified container(s) (CONTAINER[:ro|rw])")
}

// apply puts the flags into hc.
func (m *mountFlags) apply(cmd *cobra.Command, hc *container.HostConfig) error {
	for _, s := range m.mounts {
		mm, err := ParseMount(s)
		if err != nil {
			return usagef(cmd, "invalid argument %q for \"--mount\" flag: %v", s, err)
		}
		hc.Mounts = append(hc.Mounts, mm)
	}
	hc.VolumesFrom = m.volumesFrom
	return nil
}

// ParseMount reads a --mount value as the docker CLI does: comma-separated
// KEY=VALUE fields (CSV, so a value may be quoted): type, source (src),
// target (destination, dst), readonly (ro), volume-nocopy, volume-label,
// volume-driver, volume-opt, volume-subpath, bind-propagation, tmpfs-size,
// tmpfs-mode; consistency is accepted and ignored. A key it does not know
// is an error.
func ParseMount(s string) (mount.Mount, error) {
	r := csv.NewReader(strings.NewReader(s))
	fields, err := r.Read()
	if err != nil {
		return mount.Mount{}, err
	}
	m := mount.Mount{Type: mount.TypeVolume}
	volOpts := func() *mount.VolumeOptions {
		if m.VolumeOptions == nil {
			m.VolumeOptions = &mount.VolumeOptions{}
		}
		return m.VolumeOptions
	}
	boolOf := func(k, v string, hasV bool) (bool, error) {
		if !hasV {
			return true, nil
		}
		switch strings.ToLower(v) {
		case "1", "true":
			return true, nil
		case "0", "false":
			return false, nil
		}
		return false, fmt.Errorf("invalid value for %s: %s", k, v)
	}
	for _, f := range fields {
		k, v, hasV := strings.Cut(f, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		switch k {
		case "readonly", "ro":
			b, err := boolOf(k, v, hasV)
			if err != nil {
				return m, err
			}
			m.ReadOnly = b
			continue
		case "volume-nocopy":
			b, err := boolOf(k, v, hasV)
			if err != nil {
				return m, err
			}
			volOpts().NoCopy = b
			continue
		}
		if !hasV {
			return m, fmt.Errorf("invalid field '%s' must be a key=value pair", f)
		}
		switch k {
		case "type":
			m.Type = mount.Type(strings.ToLower(v))
		case "source", "src":
			m.Source = v
			if strings.HasPrefix(v, "."+string(os.PathSeparator)) || v == "." {
				if abs, err := os.Getwd(); err == nil {
					m.Source = abs + strings.TrimPrefix(v, ".")
				}
			}
		case "target", "dst", "destination":
			m.Target = v
		case "consistency":
			m.Consistency = mount.Consistency(strings.ToLower(v))
		case "bind-propagation":
			if m.BindOptions == nil {
				m.BindOptions = &mount.BindOptions{}
			}
			m.BindOptions.Propagation = mount.Propagation(strings.ToLower(v))
		case "volume-label":
			lk, lv, _ := strings.Cut(v, "=")
			o := volOpts()
			if o.Labels == nil {
				o.Labels = map[string]string{}
			}
			o.Labels[lk] = lv
		case "volume-driver":
			o := volOpts()
			if o.DriverConfig == nil {
				o.DriverConfig = &mount.Driver{}
			}
			o.DriverConfig.Name = v
		case "volume-opt":
			o := volOpts()
			if o.DriverConfig == nil {
				o.DriverConfig = &mount.Driver{}
			}
			if o.DriverConfig.Options == nil {
				o.DriverConfig.Options = map[string]string{}
			}
			ok, ov, _ := strings.Cut(v, "=")
			o.DriverConfig.Options[ok] = ov
		case "volume-subpath":
			volOpts().Subpath = v
		case "tmpfs-size":
			n, err := units.RAMInBytes(v)
			if err != nil {
				return m, fmt.Errorf("invalid value for %s: %s", k, v)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return m, fmt.Errorf("invalid value for %s: %s", k, v)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.Mode = os.FileMode(n)
		default:
			return m, fmt.Errorf("unexpected key '%s' in '%s'", k, f)
		}
	}
	if m.Type == "" {
		return m, fmt.Errorf("type is required")
	}
	if m.Target == "" {
		return m, fmt.Errorf("target is required")
	}
	if m.VolumeOptions != nil && m.Type != mount.TypeVolume {
		return m, fmt.Errorf("cannot mix 'volume-*' options with mount type '%s'", m.Type)
	}
	if m.BindOptions != nil && m.Type != mount.TypeBind {
		return m, fmt.Errorf("cannot mix 'bind-*' options with mount type '%s'", m.Type)
	}
	if m.TmpfsOptions != nil && m.Type != mount.TypeTmpfs {
		return m, fmt.Errorf("cannot mix 'tmpfs-*' options with mount type '%s'", m.Type)
	}
	return m, nil
}
