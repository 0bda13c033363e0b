package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/spf13/cobra"

	"example.org/ctr/client"
)

// eventTimeFormat is the docker CLI's timestamp of an event line.
const eventTimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

func newEventsCmd(g *globals) *cobra.Command {
	var (
		opts    client.EventsOptions
		filters []string
		format  string
	)
	cmd := &cobra.Command{
		Use:   "events [OPTIONS]",
		Short: "Stream events from ctrd",
		Long: "Stream events from ctrd until --until is reached or ctrctl is interrupted.\n\n" +
			"--since and --until take Unix timestamps, RFC 3339 dates or durations before now (10m).\n" +
			"Filters are type, event, container, image, network, volume, daemon and label.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := newFormatter(cmd, format)
			if err != nil {
				return err
			}
			for _, kv := range filters {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef(cmd, "bad format of filter %q (expected name=value)", kv)
				}
				if opts.Filters == nil {
					opts.Filters = map[string][]string{}
				}
				opts.Filters[k] = append(opts.Filters[k], v)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			defer c.Close()
			msgs, errs := c.Events(cmd.Context(), opts)
			out := cmd.OutOrStdout()
			for m := range msgs {
				if f != nil {
					err = f.write(out, m)
				} else {
					err = printEvent(out, m)
				}
				if err != nil {
					return err
				}
			}
			return <-errs
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Since, "since", "", "show events created since this time")
	fl.StringVar(&opts.Until, "until", "", "stream events until this time")
	fl.StringArrayVarP(&filters, "filter", "f", nil, "filter the events, as key=value (repeatable)")
	addFormatFlag(cmd, &format)
	return cmd
}

// printEvent writes m as one line, as the docker CLI does:
//
//	2024-05-01T10:00:00.000000000+02:00 container start c0ffee (image=busybox, name=box)
func printEvent(w io.Writer, m events.Message) error {
	var t time.Time
	switch {
	case m.TimeNano != 0:
		t = time.Unix(0, m.TimeNano)
	case m.Time != 0:
		t = time.Unix(m.Time, 0)
	}
	var b strings.Builder
	if !t.IsZero() {
		b.WriteString(t.Format(eventTimeFormat) + " ")
	}
	fmt.Fprintf(&b, "%s %s %s", m.Type, m.Action, m.Actor.ID)
	if len(m.Actor.Attributes) > 0 {
		keys := make([]string, 0, len(m.Actor.Attributes))
		for k := range m.Actor.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := make([]string, len(keys))
		for i, k := range keys {
			attrs[i] = k + "=" + m.Actor.Attributes[k]
		}
		b.WriteString(" (" + strings.Join(attrs, ", ") + ")")
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}
