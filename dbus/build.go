package dbus

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"example.org/ctr/internal/errdefs"
)

// buildOptions are Build's options: the query parameters of POST /build
// that the build job takes, each with its D-Bus type.
var buildOptions = map[string]string{
	"t": "as", "dockerfile": "s", "buildargs": "a{ss}", "labels": "a{ss}", "target": "s",
	"networkmode": "s", "platform": "s", "nocache": "b", "q": "b", "rm": "b", "forcerm": "b", "pull": "b",
}

// BuildOptionNames lists Build's options, sorted.
func BuildOptionNames() []string {
	out := make([]string, 0, len(buildOptions))
	for k := range buildOptions {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// buildEnv turns Build's options into the build job's env, as POST
// /build's query gives it. An unknown option or a value of the wrong
// type is InvalidArgument.
func buildEnv(options map[string]godbus.Variant) (map[string]string, error) {
	env := map[string]string{}
	for _, k := range BuildOptionNames() {
		v, ok := options[k]
		if !ok {
			continue
		}
		typ := buildOptions[k]
		var val string
		switch x := v.Value().(type) {
		case string:
			if typ == "s" {
				val = x
			}
		case bool:
			if typ == "b" {
				val = strconv.FormatBool(x)
			}
		case []string:
			if typ == "as" {
				b, _ := json.Marshal(x)
				val = string(b)
			}
		case map[string]string:
			if typ == "a{ss}" {
				b, _ := json.Marshal(x)
				val = string(b)
			}
		}
		if val == "" && typ != "s" {
			return nil, errdefs.InvalidArgument("option %q: want type %s, got %s", k, typ, v.Signature())
		}
		env[k] = val
	}
	for k := range options {
		if _, ok := buildOptions[k]; !ok {
			return nil, errdefs.InvalidArgument("unknown option %q; the options are %s", k, strings.Join(BuildOptionNames(), ", "))
		}
	}
	return env, nil
}

// Build starts the build job in the background, the build context (a
// tar, plain or compressed) read from fd, and returns the job's object;
// see org.example.Ctr.xml. The job's Result is its reply (id, the new
// image's); a failed step is its Error; Job.Cancel stops the build,
// removing the step's container.
func (m manager) Build(sender godbus.Sender, fd godbus.UnixFD, options map[string]godbus.Variant) (godbus.ObjectPath, *godbus.Error) {
	s := m.s
	ctx, cancel := s.callContext()
	defer cancel()
	// The method owns fd (see guardFDs): it is closed when the job ends,
	// or now if no job starts.
	in, err := openInput(int(fd))
	if err != nil {
		return "", busError(err)
	}
	env, err := buildEnv(options)
	if err != nil {
		in.Close()
		return "", busError(err)
	}
	if err := s.mayRun(ctx, sender, "build"); err != nil {
		in.Close()
		return "", busError(err)
	}
	job := s.newJob(s.withCaller(ctx, sender), "build")
	for _, k := range BuildOptionNames() {
		if v, ok := env[k]; ok {
			job.Env.Set(k, v)
		}
	}
	jctx, jcancel := context.WithCancel(s.ctx)
	_ = job.Stdin.Add(ctxReader{ctx: jctx, f: in})
	unblock := context.AfterFunc(jctx, func() { _ = in.SetReadDeadline(time.Now()) })
	id, err := s.startBackground(ctx, jctx, jcancel, "Build", job, func() {
		unblock()
		in.Close()
	})
	if err != nil {
		return "", busError(err)
	}
	s.out.flush(ctx)
	return jobPath(id), nil
}
