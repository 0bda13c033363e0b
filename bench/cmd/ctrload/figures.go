package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"example.org/ctr/bench/probe"
	"example.org/ctr/bench/report"
	"github.com/spf13/cobra"
)

// figureFlags are the flags every measuring command shares: which figure
// of which daemon, and where it goes.
type figureFlags struct {
	target, key, label, tsv string
}

func (f *figureFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.target, "target", "", "daemon measured, a column of the table (ctrd, dockerd)")
	cmd.Flags().StringVar(&f.key, "key", "", "figure key prefix, for example start.cold")
	cmd.Flags().StringVar(&f.label, "label", "", "figure name prefix in the table")
	cmd.Flags().StringVar(&f.tsv, "tsv", "", "results file to append to (none: print only)")
	_ = cmd.MarkFlagRequired("target")
	_ = cmd.MarkFlagRequired("key")
}

// row makes the row for sub-figure sub (key suffix) with a label suffix.
func (f *figureFlags) row(sub, label, value, unit, detail string) report.Row {
	key, lab := f.key, f.label
	if sub != "" {
		key += "." + sub
	}
	if label != "" {
		if lab != "" {
			lab += ": "
		}
		lab += label
	}
	return report.Row{Key: key, Target: f.target, Value: value, Unit: unit, Label: lab, Detail: detail}
}

// emit prints rows and appends them to the results file.
func (f *figureFlags) emit(cmd *cobra.Command, rows ...report.Row) error {
	for _, r := range rows {
		fmt.Fprintf(cmd.OutOrStdout(), "%-10s %-32s %12s %-5s %s\n", r.Target, r.Key, r.Value, r.Unit, r.Detail)
	}
	if f.tsv == "" {
		return nil
	}
	return report.AppendRows(f.tsv, rows...)
}

// ms renders a duration in milliseconds with three significant decimals
// for small values.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
}

// msList renders each duration with ms, space-separated.
func msList(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = ms(d)
	}
	return strings.Join(s, " ")
}

// pidRecorder returns a Spawned hook that appends PID:START to file.
func pidRecorder(file string) func(*probe.Proc) {
	if file == "" {
		return nil
	}
	return func(p *probe.Proc) {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ctrload: recording pid:", err)
			return
		}
		fmt.Fprintln(f, p.String())
		f.Close()
	}
}
