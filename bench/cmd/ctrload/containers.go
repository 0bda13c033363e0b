package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"example.org/ctr/bench/archive"
	"example.org/ctr/bench/probe"
	"example.org/ctr/bench/report"
	"github.com/spf13/cobra"
)

// The commands of the image and container sections: make the image the
// load section loads, time container life cycles over the API, and turn
// what other tools measured (hyperfine, go test -bench, the shell's
// clock) into figures.

func newImage() *cobra.Command {
	var out, layerDir, tag string
	var mib int64
	var spec archive.Spec
	cmd := &cobra.Command{
		Use:   "image --out F --layers-dir D [--mib 220] [--layers 4] [--seed 1] [--tag T]",
		Short: "Write a docker save archive of generated layers (and each layer as a tar)",
		Long: `image writes a docker save archive that ctrctl load and docker load read:
--layers layers (the first the largest) holding --mib MiB of files in all,
of mixed sizes (25% of the bytes in files of 0.5-32 KiB, 35% in 64 KiB-2 MiB,
40% in 4-24 MiB), with symbolic and hard links, contents drawn from --seed.
Each layer is also written as D/layer-N.tar, for the tar -x floor. It prints
one line: id= bytes= layers= files=.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec.Size, spec.Tag = mib<<20, tag
			if err := os.MkdirAll(layerDir, 0o755); err != nil {
				return err
			}
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			w := bufio.NewWriterSize(f, 1<<20)
			im, err := archive.Write(w, spec, layerDir)
			if err == nil {
				err = w.Flush()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(out)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "id=%s bytes=%d layers=%d files=%d\n", im.ID, im.Bytes, len(im.Layers), im.Files())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "archive to write")
	cmd.Flags().StringVar(&layerDir, "layers-dir", "", "folder for the layers as plain tar files")
	cmd.Flags().StringVar(&tag, "tag", "ctrbench/load:latest", "image name in the archive")
	cmd.Flags().Int64Var(&mib, "mib", 220, "MiB of file contents in all")
	cmd.Flags().IntVar(&spec.Layers, "layers", 4, "layers")
	cmd.Flags().Uint64Var(&spec.Seed, "seed", 1, "seed of sizes and contents")
	_ = cmd.MarkFlagRequired("out")
	_ = cmd.MarkFlagRequired("layers-dir")
	return cmd
}

// parseDaemon reads NAME=SOCK[=NETWORKMODE].
func parseDaemon(s string) (probe.LifecycleTarget, error) {
	f := strings.SplitN(s, "=", 3)
	if len(f) < 2 || f[0] == "" || f[1] == "" {
		return probe.LifecycleTarget{}, fmt.Errorf("bad --daemon %q: want NAME=SOCK[=NETWORKMODE]", s)
	}
	t := probe.LifecycleTarget{Name: f[0], Sock: f[1]}
	if len(f) == 3 {
		t.NetworkMode = f[2]
	}
	return t, nil
}

func newLifecycle() *cobra.Command {
	var key, eventsKey, tsv string
	var daemons []string
	var spec probe.LifecycleSpec
	cmd := &cobra.Command{
		Use:   "lifecycle --key K --daemon NAME=SOCK[=NETWORKMODE]... [-n 50] [--image I] [--events]",
		Short: "Time create, start, wait and remove over the API, daemons taking turns",
		Long: `lifecycle runs -n cycles of POST /containers/create, POST /start, POST
/wait and DELETE on each daemon, one call after another; in each round every
daemon does one cycle, in alternating order; a daemon whose call fails does
no more (its KEY.sum is FAIL, and lifecycle exits non-zero once all figures
are recorded). It records, per daemon, KEY.sum
(all cycles, s), KEY.cycle.p50 and the median of each phase (KEY.create.p50,
KEY.start.p50, KEY.wait.p50, KEY.rm.p50, ms). With --events it follows GET
/events on each daemon meanwhile and records EVENTS-KEY.ACTION.after: the
median of the event's arrival minus the arrival of the API answer, for
create, start and destroy (podman's remove counts as destroy).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var targets []probe.LifecycleTarget
			var modes []string
			for _, d := range daemons {
				t, err := parseDaemon(d)
				if err != nil {
					return err
				}
				targets = append(targets, t)
				m := t.NetworkMode
				if m == "" {
					m = "default"
				}
				modes = append(modes, t.Name+" "+m)
			}
			if len(targets) == 0 {
				return fmt.Errorf("no --daemon given")
			}
			res, err := probe.Lifecycle(cmd.Context(), targets, spec)
			if err != nil {
				return err
			}
			netNote := "NetworkMode: " + strings.Join(modes, ", ")
			var rows []report.Row
			var failed []string
			for _, t := range targets {
				r := res[t.Name]
				ff := figureFlags{target: t.Name, key: key, tsv: tsv}
				if r.Err != nil {
					failed = append(failed, r.Err.Error())
					ff.label = fmt.Sprintf("%d× create, start, wait, rm over the API", spec.N)
					rows = append(rows, ff.row("sum", "all cycles ("+netNote+")", "FAIL", "s",
						fmt.Sprintf("%v (after %d good cycles)", r.Err, len(r.Cycles))))
					continue
				}
				cycles := r.Phase("cycle")
				detail := fmt.Sprintf("%d cycles, image %s, cmd %v, NetworkMode %q; cycles (ms): [%s]",
					len(cycles), spec.Image, spec.Cmd, t.NetworkMode, msList(cycles))
				ff.label = fmt.Sprintf("%d× create, start, wait, rm over the API", spec.N)
				rows = append(rows, ff.row("sum", "all cycles ("+netNote+")",
					strconv.FormatFloat(r.Sum().Seconds(), 'f', 2, 64), "s", detail))
				rows = append(rows, ff.row("cycle.p50", "one cycle, median", ms(probe.Median(cycles)), "ms", detail))
				for _, ph := range []string{"create", "start", "wait", "rm"} {
					d := r.Phase(ph)
					rows = append(rows, ff.row(ph+".p50", ph+", median", ms(probe.Median(d)), "ms",
						fmt.Sprintf("median of %d; p90 %s ms, max %s ms", len(d), ms(pct(d, 90)), ms(pct(d, 100)))))
				}
				if !spec.Events {
					continue
				}
				ef := figureFlags{target: t.Name, key: eventsKey, tsv: tsv,
					label: "event arrival after the API answer"}
				for _, a := range []string{"create", "start", "destroy"} {
					lag := r.EventLag[a]
					v, d := "none", fmt.Sprintf("no %s event seen", a)
					switch {
					case r.EventErr != nil:
						v, d = "FAIL", r.EventErr.Error()
					case len(lag) > 0:
						v = ms(probe.Median(lag))
						d = fmt.Sprintf("median of %d (of %d containers); p90 %s ms, max %s ms; GET /events?filters={\"type\":[\"container\"]}",
							len(lag), len(r.Cycles), ms(pct(lag, 90)), ms(pct(lag, 100)))
					}
					rows = append(rows, ef.row(a+".after", a, v, "ms", d))
				}
			}
			ff := figureFlags{tsv: tsv}
			if err := ff.emit(cmd, rows...); err != nil {
				return err
			}
			if len(failed) > 0 {
				return fmt.Errorf("%s", strings.Join(failed, "; "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "lifecycle", "figure key prefix")
	cmd.Flags().StringVar(&eventsKey, "events-key", "events", "figure key prefix of the event figures")
	cmd.Flags().StringVar(&tsv, "tsv", "", "results file to append to (none: print only)")
	cmd.Flags().StringArrayVar(&daemons, "daemon", nil, "NAME=SOCK[=NETWORKMODE]; repeatable, the daemons take turns")
	cmd.Flags().StringVar(&spec.Image, "image", "busybox:latest", "image of the containers")
	cmd.Flags().StringSliceVar(&spec.Cmd, "cmd", []string{"true"}, "command of the containers")
	cmd.Flags().IntVarP(&spec.N, "cycles", "n", 50, "cycles per daemon")
	cmd.Flags().BoolVar(&spec.Events, "events", false, "also time the events")
	cmd.Flags().DurationVar(&spec.Settle, "settle", 5*time.Second, "longest wait for late events after the last cycle")
	cmd.Flags().DurationVar(&spec.Timeout, "timeout", time.Minute, "longest wait for each API call")
	return cmd
}

// pct is the nearest-rank percentile of unsorted durations.
func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return probe.Percentile(s, p)
}

// formatValue renders a figure: durations in ms as ms does, others with
// two decimals.
func formatValue(v float64, unit string) string {
	if unit == "ms" {
		return ms(time.Duration(v * float64(time.Millisecond)))
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// median of floats (the mean of the middle two for an even count).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func newMedian() *cobra.Command {
	var ff figureFlags
	var unit, detail string
	cmd := &cobra.Command{
		Use:   "median --target T --key K [--unit ms] [--detail D] VALUE...",
		Short: "Record the median of values measured elsewhere (the shell's clock)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := make([]float64, len(args))
			for i, a := range args {
				f, err := strconv.ParseFloat(a, 64)
				if err != nil {
					return fmt.Errorf("value %q: %w", a, err)
				}
				v[i] = f
			}
			d := fmt.Sprintf("median of %d [%s]", len(v), strings.Join(args, " "))
			if detail != "" {
				d += "; " + detail
			}
			return ff.emit(cmd, ff.row("", "", formatValue(median(v), unit), unit, d))
		},
	}
	ff.add(cmd)
	cmd.Flags().StringVar(&unit, "unit", "ms", "unit of the values")
	cmd.Flags().StringVar(&detail, "detail", "", "how they were measured")
	return cmd
}

// splitPairs reads KEY=VALUE flags into a map.
func splitPairs(flag string, pairs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad --%s %q: want KEY=VALUE", flag, p)
		}
		m[k] = v
	}
	return m, nil
}

func newHyperfine() *cobra.Command {
	var tsv string
	var labels, cmds []string
	cmd := &cobra.Command{
		Use:   "hyperfine --tsv F [--label KEY=LABEL]... [--cmd TARGET:KEY=COMMAND]... FILE.json...",
		Short: "Record hyperfine's runs (--export-json files, commands named TARGET:KEY)",
		Long: `hyperfine reads the --export-json files of one or more hyperfine runs
whose commands were named TARGET:KEY (hyperfine -n), pools the runs of each
name over all files (rounds of one series), and records the median in ms as
figure KEY of TARGET, with min, max and the count in the detail.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			lab, err := splitPairs("label", labels)
			if err != nil {
				return err
			}
			cmdOf, err := splitPairs("cmd", cmds)
			if err != nil {
				return err
			}
			times := map[string][]time.Duration{}
			rounds := map[string]int{}
			var order []string
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				var doc struct {
					Results []struct {
						Command string    `json:"command"`
						Times   []float64 `json:"times"`
					} `json:"results"`
				}
				if err := json.Unmarshal(b, &doc); err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				for _, r := range doc.Results {
					if _, ok := times[r.Command]; !ok {
						order = append(order, r.Command)
					}
					for _, t := range r.Times {
						times[r.Command] = append(times[r.Command], time.Duration(t*float64(time.Second)))
					}
					rounds[r.Command]++
				}
			}
			var rows []report.Row
			for _, name := range order {
				target, key, ok := strings.Cut(name, ":")
				if !ok {
					return fmt.Errorf("hyperfine command name %q: want TARGET:KEY", name)
				}
				d := times[name]
				detail := fmt.Sprintf("median of %d runs in %d rounds, min %s ms, max %s ms; hyperfine -N",
					len(d), rounds[name], ms(slices.Min(d)), ms(slices.Max(d)))
				if c := cmdOf[name]; c != "" {
					detail += " '" + c + "'"
				}
				rows = append(rows, report.Row{Key: key, Target: target, Value: ms(probe.Median(d)), Unit: "ms",
					Label: lab[key], Detail: detail})
			}
			ff := figureFlags{tsv: tsv}
			return ff.emit(cmd, rows...)
		},
	}
	cmd.Flags().StringVar(&tsv, "tsv", "", "results file to append to (none: print only)")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "KEY=LABEL, the figure's name in the table; repeatable")
	cmd.Flags().StringArrayVar(&cmds, "cmd", nil, "TARGET:KEY=COMMAND, quoted in the detail; repeatable")
	return cmd
}

// benchLine matches a line of go test -bench output: the name (without
// the -GOMAXPROCS suffix), the count and the rest (the metrics).
var benchLine = regexp.MustCompile(`^(Benchmark\S*?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

func newGoBench() *cobra.Command {
	var ff figureFlags
	var file string
	var subs []string
	cmd := &cobra.Command{
		Use:   "gobench --target T --file OUT --sub NAME=KEY=LABEL... ",
		Short: "Record the p50-µs and p99-µs metrics of go test -bench output",
		Long: `gobench reads the output of go test -bench (-count N) and, for each --sub
benchmark NAME (such as BenchmarkVersion/dbus), records KEY.p50 and KEY.p99 in
ms: the medians, over the -count runs, of the benchmark's p50-µs and p99-µs
metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			type sub struct{ key, label string }
			want := map[string]sub{}
			var order []string
			for _, s := range subs {
				f := strings.SplitN(s, "=", 3)
				if len(f) != 3 {
					return fmt.Errorf("bad --sub %q: want NAME=KEY=LABEL", s)
				}
				want[f[0]] = sub{f[1], f[2]}
				order = append(order, f[0])
			}
			metrics := map[string]map[string][]float64{} // name -> unit -> values
			for _, line := range strings.Split(string(b), "\n") {
				m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
				if m == nil {
					continue
				}
				if _, ok := want[m[1]]; !ok {
					continue
				}
				f := strings.Fields(m[3])
				for i := 0; i+1 < len(f); i += 2 {
					v, err := strconv.ParseFloat(f[i], 64)
					if err != nil {
						continue
					}
					if metrics[m[1]] == nil {
						metrics[m[1]] = map[string][]float64{}
					}
					metrics[m[1]][f[i+1]] = append(metrics[m[1]][f[i+1]], v)
				}
			}
			var rows []report.Row
			for _, name := range order {
				s := want[name]
				f := figureFlags{target: ff.target, key: s.key, label: s.label, tsv: ff.tsv}
				for _, p := range []string{"p50", "p99"} {
					v := metrics[name][p+"-µs"]
					if len(v) == 0 {
						rows = append(rows, f.row(p, p, "FAIL", "ms", "no "+p+"-µs metric for "+name+" in "+file))
						continue
					}
					var runs []string
					for _, x := range v {
						runs = append(runs, strconv.FormatFloat(x, 'f', 1, 64))
					}
					label := "median"
					if p == "p99" {
						label = "p99"
					}
					rows = append(rows, f.row(p, label, formatValue(median(v)/1000, "ms"), "ms",
						fmt.Sprintf("%s, median over %d runs of its %s-µs [%s]", name, len(v), p, strings.Join(runs, " "))))
				}
			}
			return ff.emit(cmd, rows...)
		},
	}
	cmd.Flags().StringVar(&ff.target, "target", "ctrd", "daemon measured")
	cmd.Flags().StringVar(&ff.tsv, "tsv", "", "results file to append to (none: print only)")
	cmd.Flags().StringVar(&file, "file", "", "go test -bench output")
	cmd.Flags().StringArrayVar(&subs, "sub", nil, "NAME=KEY=LABEL; repeatable")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func newOCISpec() *cobra.Command {
	var file, cgroupsPath string
	var args []string
	var readonly, seccompDefault bool
	cmd := &cobra.Command{
		Use:   "ocispec --file config.json --args true [--readonly] [--cgroups-path P] [--seccomp-default]",
		Short: "Adjust an OCI bundle config (from runc spec) for the runtime floor",
		Long: `ocispec edits the config.json of an OCI bundle in place: no terminal, the
process arguments, a read-only root file system when asked, and the cgroup
path (so that the harness knows which cgroups to remove); with
--seccomp-default, docker's default seccomp profile (moby/profiles, as
dockerd and ctrd apply it) for the config's bounding capabilities.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			var c map[string]any
			if err := json.Unmarshal(b, &c); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			obj := func(m map[string]any, k string) map[string]any {
				o, ok := m[k].(map[string]any)
				if !ok {
					o = map[string]any{}
					m[k] = o
				}
				return o
			}
			proc := obj(c, "process")
			proc["terminal"] = false
			proc["args"] = args
			obj(c, "root")["readonly"] = readonly
			if cgroupsPath != "" {
				obj(c, "linux")["cgroupsPath"] = cgroupsPath
			}
			if seccompDefault {
				if err := setDefaultSeccomp(c); err != nil {
					return err
				}
			}
			out, err := json.MarshalIndent(c, "", " ")
			if err != nil {
				return err
			}
			return os.WriteFile(file, append(out, '\n'), 0o644)
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "config.json to edit")
	cmd.Flags().StringSliceVar(&args, "args", []string{"true"}, "process arguments")
	cmd.Flags().BoolVar(&readonly, "readonly", false, "read-only root file system")
	cmd.Flags().StringVar(&cgroupsPath, "cgroups-path", "", "linux.cgroupsPath")
	cmd.Flags().BoolVar(&seccompDefault, "seccomp-default", false, "linux.seccomp: docker's default profile")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}
