// Package report keeps the figures of ctr's benchmark harness in a TSV
// file, one figure of one daemon a line, and renders them as a markdown
// table with the daemons side by side, the ratio of each to the baseline
// and the project's goals.
//
// The results file has the header
//
//	key	target	value	unit	label	detail
//
// where key names the figure ("start.cold.ready"), target the daemon
// ("ctrd", "dockerd"), value a number or a word such as "FAIL", label the
// figure's name in the table and detail how it was measured (raw runs,
// command line). The goals file has the header
//
//	key	target	against	against_target	op	bound	source
//
// and says: target's value of key, divided by against_target's value of
// against, must be below (op "<") or above (op ">") bound. An empty target
// is the table's subject (its first column that is not the baseline), an
// empty against the same key, an empty against_target the baseline.
package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Row is one figure of one daemon.
type Row struct {
	Key, Target, Value, Unit, Label, Detail string
}

// Goal is a bound on the ratio of a target's figure to another figure,
// by default the baseline's figure of the same key.
type Goal struct {
	// Key is the target's figure, Against the figure it is divided by
	// (empty: the same key).
	Key, Against string
	// Target is whose Key is bounded (empty: the table's subject, its
	// first target that is not the baseline); AgainstTarget whose Against
	// it is divided by (empty: the baseline). A goal that compares two
	// figures of one target names it in both.
	Target, AgainstTarget string
	// Op is "<" or ">".
	Op string
	// Bound is the ratio's limit.
	Bound float64
	// Source says where the goal comes from ("issue 2").
	Source string
}

const (
	rowHeader  = "key\ttarget\tvalue\tunit\tlabel\tdetail"
	goalHeader = "key\ttarget\tagainst\tagainst_target\top\tbound\tsource"
)

// clean keeps a field on one TSV line.
func clean(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}

// appendLines adds lines to path, writing header first if the file is new
// or empty.
func appendLines(path, header string, lines []string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w := bufio.NewWriter(f)
	if st.Size() == 0 {
		fmt.Fprintln(w, header)
	}
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// AppendRows adds rows to the results file at path.
func AppendRows(path string, rows ...Row) error {
	lines := make([]string, len(rows))
	for i, r := range rows {
		if r.Key == "" || r.Target == "" {
			return errors.New("report: a row needs a key and a target")
		}
		lines[i] = strings.Join([]string{clean(r.Key), clean(r.Target), clean(r.Value),
			clean(r.Unit), clean(r.Label), clean(r.Detail)}, "\t")
	}
	return appendLines(path, rowHeader, lines)
}

// AppendGoals adds goals to the goals file at path.
func AppendGoals(path string, goals ...Goal) error {
	lines := make([]string, len(goals))
	for i, g := range goals {
		if g.Op != "<" && g.Op != ">" {
			return fmt.Errorf("report: goal op %q: want < or >", g.Op)
		}
		if g.Key == "" {
			return errors.New("report: a goal needs a key")
		}
		lines[i] = strings.Join([]string{clean(g.Key), clean(g.Target), clean(g.Against), clean(g.AgainstTarget),
			g.Op, strconv.FormatFloat(g.Bound, 'g', -1, 64), clean(g.Source)}, "\t")
	}
	return appendLines(path, goalHeader, lines)
}

// readTSV returns the records of a file with the given header; a missing
// file has none.
func readTSV(path, header string, fields int) ([][]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out [][]string
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if i == 0 {
			if line != header {
				return nil, fmt.Errorf("report: %s: header %q, want %q", path, line, header)
			}
			continue
		}
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != fields {
			return nil, fmt.Errorf("report: %s:%d: %d fields, want %d", path, i+1, len(f), fields)
		}
		out = append(out, f)
	}
	return out, nil
}

// ReadRows reads a results file.
func ReadRows(path string) ([]Row, error) {
	recs, err := readTSV(path, rowHeader, 6)
	if err != nil {
		return nil, err
	}
	rows := make([]Row, len(recs))
	for i, f := range recs {
		rows[i] = Row{Key: f[0], Target: f[1], Value: f[2], Unit: f[3], Label: f[4], Detail: f[5]}
	}
	return rows, nil
}

// ReadGoals reads a goals file.
func ReadGoals(path string) ([]Goal, error) {
	recs, err := readTSV(path, goalHeader, 7)
	if err != nil {
		return nil, err
	}
	goals := make([]Goal, len(recs))
	for i, f := range recs {
		b, err := strconv.ParseFloat(f[5], 64)
		if err != nil {
			return nil, fmt.Errorf("report: goal %s bound %q: %w", f[0], f[5], err)
		}
		goals[i] = Goal{Key: f[0], Target: f[1], Against: f[2], AgainstTarget: f[3], Op: f[4], Bound: b, Source: f[6]}
	}
	return goals, nil
}

// Markdown writes rows as one table: a line per key in the order keys
// first appear, a column per target in targets that has at least one
// value (values of other targets are left out; base always has its
// column), then, when base is one of targets, the ratio of the first
// other target (the subject) to base (when neither is negative), and the
// goals that apply to the key.
// A later row for the same key and target replaces an earlier one.
func Markdown(w io.Writer, rows []Row, goals []Goal, targets []string, base string) error {
	type line struct {
		label, unit string
		val         map[string]string
	}
	var order []string
	lines := map[string]*line{}
	has := map[string]bool{}
	for _, r := range rows {
		l, ok := lines[r.Key]
		if !ok {
			l = &line{label: r.Label, unit: r.Unit, val: map[string]string{}}
			lines[r.Key] = l
			order = append(order, r.Key)
		}
		if l.label == "" {
			l.label = r.Label
		}
		if l.unit == "" {
			l.unit = r.Unit
		}
		l.val[r.Target] = r.Value
		has[r.Target] = true
	}
	value := func(key, target string) (float64, bool) {
		l, ok := lines[key]
		if !ok {
			return 0, false
		}
		v, err := strconv.ParseFloat(l.val[target], 64)
		return v, err == nil
	}
	subject := ""
	hasBase := false
	for _, t := range targets {
		if t == base {
			hasBase = true
		} else if subject == "" {
			subject = t
		}
	}
	var cols []string
	for _, t := range targets {
		if t == base || t == subject || has[t] {
			cols = append(cols, t)
		}
	}
	ratios := hasBase && subject != ""
	goalsOf := map[string][]Goal{}
	for _, g := range goals {
		goalsOf[g.Key] = append(goalsOf[g.Key], g)
	}

	head := []string{"figure", "unit"}
	align := []string{"---", "---"}
	for _, t := range cols {
		head = append(head, t)
		align = append(align, "---:")
	}
	if ratios {
		head = append(head, subject+"/"+base, "goal")
		align = append(align, "---:", "---")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |\n|%s|\n", strings.Join(head, " | "), strings.Join(align, "|"))
	for _, key := range order {
		l := lines[key]
		label := l.label
		if label == "" {
			label = key
		}
		cells := []string{label, l.unit}
		for _, t := range cols {
			v := l.val[t]
			if v == "" {
				v = "–"
			}
			cells = append(cells, v)
		}
		if ratios {
			ratio := "–"
			s, ok1 := value(key, subject)
			bv, ok2 := value(key, base)
			if ok1 && ok2 && bv > 0 && s >= 0 {
				ratio = formatRatio(s / bv)
			}
			var gc []string
			for _, g := range goalsOf[key] {
				gc = append(gc, goalCell(g, subject, base, value))
			}
			cells = append(cells, ratio, strings.Join(gc, "; "))
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// goalCell renders goal g and whether it is met. subject and base are the
// targets an empty Target and AgainstTarget stand for.
func goalCell(g Goal, subject, base string, value func(string, string) (float64, bool)) string {
	target, against, againstTarget := g.Target, g.Against, g.AgainstTarget
	if target == "" {
		target = subject
	}
	if against == "" {
		against = g.Key
	}
	if againstTarget == "" {
		againstTarget = base
	}
	plain := target == subject && against == g.Key && againstTarget == base
	text := fmt.Sprintf("%s %s×", g.Op, formatRatio(g.Bound))
	if target != subject {
		text = target + " " + text
	}
	switch {
	case plain:
	case against == g.Key:
		text += " " + againstTarget
	default:
		text += " " + againstTarget + "'s " + against
	}
	if g.Source != "" {
		text += " (" + g.Source + ")"
	}
	s, ok1 := value(g.Key, target)
	bv, ok2 := value(against, againstTarget)
	if !ok1 || !ok2 || bv == 0 {
		return text + ": not measured"
	}
	r := s / bv
	met := (g.Op == "<" && r < g.Bound) || (g.Op == ">" && r > g.Bound)
	verdict := "**missed**"
	if met {
		verdict = "met"
	}
	if !plain {
		return fmt.Sprintf("%s: %s (%s)", text, verdict, formatRatio(r))
	}
	return text + ": " + verdict
}

// formatRatio prints a ratio with two significant digits (at least two
// decimals below 1).
func formatRatio(r float64) string {
	switch {
	case math.IsInf(r, 0) || math.IsNaN(r):
		return "–"
	case r >= 100:
		return strconv.FormatFloat(r, 'f', 0, 64)
	case r >= 10:
		return strconv.FormatFloat(r, 'f', 1, 64)
	case r >= 0.1:
		return strconv.FormatFloat(r, 'f', 2, 64)
	default:
		return strconv.FormatFloat(r, 'g', 2, 64)
	}
}
