package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/template"

	"github.com/spf13/cobra"
)

// formatHelp is the help of every --format flag.
const formatHelp = `format the output: "json" for JSON, or a Go template such as '{{.Server.Version}}'`

// addFormatFlag adds --format to cmd.
func addFormatFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "format", "", formatHelp)
}

// templateFuncs are the functions templates of --format can call, as in
// the docker CLI.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  join,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"truncate": func(s string, n int) string {
		if n >= 0 && len(s) > n {
			return s[:n]
		}
		return s
	},
}

// join joins the elements of a list of strings, or of any values (as a
// JSON reply decodes), with sep.
func join(list any, sep string) (string, error) {
	switch l := list.(type) {
	case []string:
		return strings.Join(l, sep), nil
	case []any:
		parts := make([]string, len(l))
		for i, v := range l {
			parts[i] = fmt.Sprint(v)
		}
		return strings.Join(parts, sep), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("join: want a list, got %T", list)
}

// formatter writes values as --format says: "json" writes each as one
// line of JSON; anything else is a Go template run on each value,
// followed by a newline.
type formatter struct {
	json bool
	tmpl *template.Template
}

// newFormatter parses format; a template that does not parse is a usage
// error of cmd. An empty format gives a nil formatter: the command's own
// output.
func newFormatter(cmd *cobra.Command, format string) (*formatter, error) {
	if format == "" {
		return nil, nil
	}
	if format == "json" {
		return &formatter{json: true}, nil
	}
	t, err := template.New("format").Funcs(templateFuncs).Parse(format)
	if err != nil {
		return nil, usagef(cmd, "template parsing error: %v", err)
	}
	return &formatter{tmpl: t}, nil
}

// write writes v to w.
func (f *formatter) write(w io.Writer, v any) error {
	if f.json {
		return json.NewEncoder(w).Encode(v)
	}
	var b strings.Builder
	if err := f.tmpl.Execute(&b, v); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}
