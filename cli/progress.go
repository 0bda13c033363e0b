package cli

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// isTerminal reports whether v is a file open on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progress shows the progress of a load or import: bars (mpb) when out
// is a terminal, plain lines otherwise, nothing but results when quiet.
type progress struct {
	out   io.Writer
	quiet bool
	bars  *mpb.Progress // nil when out is not a terminal

	mu     sync.Mutex
	layers map[string]*mpb.Bar
	done   map[string]bool
}

func newProgress(out io.Writer, quiet bool) *progress {
	p := &progress{out: out, quiet: quiet, layers: map[string]*mpb.Bar{}, done: map[string]bool{}}
	if !quiet && isTerminal(out) {
		p.bars = mpb.New(mpb.WithOutput(out), mpb.WithWidth(40))
	}
	return p
}

// upload wraps the stream being sent: on a terminal, a bar shows how much
// of its size went out.
func (p *progress) upload(r io.Reader, size int64, name string) io.Reader {
	if p.bars == nil {
		return r
	}
	bar := p.bars.AddBar(size,
		mpb.PrependDecorators(decor.Name(name, decor.WC{W: len(name) + 1, C: decor.DindentRight})),
		mpb.AppendDecorators(decor.Counters(decor.SizeB1000(0), "% .1f / % .1f")),
	)
	return &uploadReader{r: r, bar: bar}
}

type uploadReader struct {
	r   io.Reader
	bar *mpb.Bar
}

func (u *uploadReader) Read(b []byte) (int, error) {
	n, err := u.r.Read(b)
	u.bar.IncrBy(n)
	if err != nil {
		if u.bar.Current() > 0 {
			u.bar.SetTotal(u.bar.Current(), true)
		} else {
			u.bar.Abort(true)
		}
	}
	return n, err
}

// message shows one message of the daemon.
func (p *progress) message(m jsonstream.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case m.Stream != "":
		if p.bars != nil {
			_, _ = p.bars.Write([]byte(m.Stream))
		} else {
			_, _ = io.WriteString(p.out, m.Stream)
		}
	case p.quiet || m.ID == "":
	case p.bars != nil:
		bar := p.layers[m.ID]
		if bar == nil && m.Progress != nil {
			bar = p.bars.AddBar(m.Progress.Total,
				mpb.PrependDecorators(decor.Name(m.Status+" "+m.ID+" ")),
				mpb.AppendDecorators(decor.Counters(decor.SizeB1000(0), "% .1f / % .1f")))
			p.layers[m.ID] = bar
		}
		switch {
		case bar != nil && m.Progress != nil:
			bar.SetCurrent(m.Progress.Current)
		case bar != nil:
			bar.SetTotal(-1, true)
		default:
			_, _ = fmt.Fprintf(p.bars, "%s %s\n", m.Status, m.ID)
		}
	case m.Progress == nil && !p.done[m.ID]:
		p.done[m.ID] = true
		fmt.Fprintf(p.out, "%s %s\n", m.Status, m.ID)
	}
}

// wait lets the bars finish drawing.
func (p *progress) wait() {
	if p.bars == nil {
		return
	}
	p.mu.Lock()
	for _, b := range p.layers {
		if !b.Completed() {
			b.Abort(false)
		}
	}
	p.mu.Unlock()
	p.bars.Wait()
}
