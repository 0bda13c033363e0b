package dbus

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	godbus "github.com/godbus/dbus/v5"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// fuzzInput reads D-Bus values out of a fuzzer's bytes: each value is a
// type byte and its content, so that the fuzzer can reach every type a
// bus call may carry in an a{sv} (and the nesting of variants).
type fuzzInput struct{ b []byte }

func (in *fuzzInput) byte() byte {
	if len(in.b) == 0 {
		return 0
	}
	c := in.b[0]
	in.b = in.b[1:]
	return c
}

func (in *fuzzInput) uint64() uint64 {
	var buf [8]byte
	n := copy(buf[:], in.b)
	in.b = in.b[n:]
	return binary.BigEndian.Uint64(buf[:])
}

// str reads a string of up to 255 bytes, any bytes (a real bus delivers
// only valid UTF-8, but the decoding must not care).
func (in *fuzzInput) str() string {
	n := min(int(in.byte()), len(in.b))
	s := string(in.b[:n])
	in.b = in.b[n:]
	return s
}

func (in *fuzzInput) strs() []string {
	out := make([]string, in.byte()%5)
	for i := range out {
		out[i] = in.str()
	}
	return out
}

// value returns a value of one of the D-Bus types, nesting variants,
// arrays of variants and a{sv} up to depth.
func (in *fuzzInput) value(depth int) any {
	kinds := byte(17)
	if depth <= 0 {
		kinds = 14 // no nesting
	}
	switch in.byte() % kinds {
	case 0:
		return in.str()
	case 1:
		return in.strs()
	case 2:
		m := map[string]string{}
		for range in.byte() % 4 {
			m[in.str()] = in.str()
		}
		return m
	case 3:
		return in.byte()&1 == 1
	case 4:
		return in.byte()
	case 5:
		return int16(in.uint64())
	case 6:
		return uint16(in.uint64())
	case 7:
		return int32(in.uint64())
	case 8:
		return uint32(in.uint64())
	case 9:
		return int64(in.uint64())
	case 10:
		return in.uint64()
	case 11:
		return math.Float64frombits(in.uint64())
	case 12:
		return godbus.ObjectPath("/" + in.str())
	case 13:
		return []byte(in.str())
	case 14:
		return godbus.MakeVariant(in.value(depth - 1))
	case 15:
		vs := make([]godbus.Variant, in.byte()%4)
		for i := range vs {
			vs[i] = godbus.MakeVariant(in.value(depth - 1))
		}
		return vs
	default:
		return in.options(nil, depth-1)
	}
}

// options reads an a{sv}: most keys are names from known (the options a
// method takes), the others any string.
func (in *fuzzInput) options(known []string, depth int) map[string]godbus.Variant {
	m := map[string]godbus.Variant{}
	for range in.byte() % 8 {
		var k string
		if c := in.byte(); c < 224 && len(known) > 0 {
			k = known[int(c)%len(known)]
		} else {
			k = in.str()
		}
		m[k] = godbus.MakeVariant(in.value(depth))
	}
	return m
}

// checkRefusal fails t unless err is an InvalidArgument that reaches the
// bus as org.example.Ctr.Error.InvalidArgument.
func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if c := errdefs.ClassOf(err); c != errdefs.InvalidArgumentClass {
		t.Fatalf("%v: class %v, want invalid argument", err, c)
	}
	if e := busError(err); e.Name != ErrorName(errdefs.InvalidArgumentClass) || len(e.Body) != 1 {
		t.Fatalf("%v: bus error %s %v", err, e.Name, e.Body)
	}
}

// FuzzCreateOptions feeds CreateContainer's arguments, its a{sv} options
// built from the fuzzer's bytes, through buildCreate and the encoding of
// the create job's env. Nothing may panic; a refusal is an
// InvalidArgument; an accepted call has only known options, each of its
// own type, and its request encodes and decodes as the job's env.
func FuzzCreateOptions(f *testing.F) {
	names := CreateOptionNames()
	index := func(name string) byte {
		for i, n := range names {
			if n == name {
				return byte(i)
			}
		}
		f.Fatalf("no option %s", name)
		return 0
	}
	// Seeds: image, command, then options (count, then key and value).
	seed := func(image string, cmd []string, opts ...[]byte) []byte {
		b := []byte{byte(len(image))}
		b = append(b, image...)
		b = append(b, byte(len(cmd)))
		for _, c := range cmd {
			b = append(b, byte(len(c)))
			b = append(b, c...)
		}
		b = append(b, byte(len(opts)))
		for _, o := range opts {
			b = append(b, o...)
		}
		return b
	}
	opt := func(name string, kind byte, content ...byte) []byte {
		return append([]byte{index(name), kind}, content...)
	}
	s := func(v string) []byte { return append([]byte{byte(len(v))}, v...) }
	f.Add(seed("busybox", []string{"true"}))
	f.Add(seed("busybox", []string{"sh", "-c", "echo hi"}, opt("name", 0, s("web")...), opt("tty", 3, 1)))
	f.Add(seed("busybox", nil, opt("memory", 9, 0, 0, 0, 0, 0x10, 0, 0, 0), opt("stop_timeout", 7, 0, 0, 0, 0, 0, 0, 0, 5)))
	f.Add(seed("busybox", nil, opt("restart", 0, s("on-failure:3")...), opt("dns", 1, append([]byte{1}, s("1.1.1.1")...)...)))
	f.Add(seed("busybox", nil, opt("labels", 2, append(append([]byte{1}, s("a")...), s("b")...)...)))
	f.Add(seed("busybox", nil, opt("stop_timeout", 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)))
	f.Add(seed("busybox", nil, opt("env", 14, append([]byte{1, 1}, s("A=1")...)...)))
	f.Add(seed("", nil))
	f.Add(seed("busybox", nil, append([]byte{255}, s("nosuchoption")...)))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		image := in.str()
		var cmd []string
		for range in.byte() % 4 {
			cmd = append(cmd, in.str())
		}
		options := in.options(names, 2)
		r, err := buildCreate(image, cmd, options)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		for k, v := range options {
			o, ok := createOptions[k]
			if !ok {
				t.Fatalf("unknown option %q accepted", k)
			}
			if sig := v.Signature().String(); sig != o.typ && !strings.ContainsAny(o.typ, "ix") {
				t.Fatalf("option %q (%s) accepted a value of type %s", k, o.typ, sig)
			}
		}
		var env engine.Env
		if r.name != "" {
			env.Set("name", r.name)
		}
		if err := env.SetJSON("config", r.cfg); err != nil {
			t.Fatalf("config does not encode: %v", err)
		}
		if err := env.SetJSON("host_config", r.hc); err != nil {
			t.Fatalf("host config does not encode: %v", err)
		}
		var got struct {
			Name       string                `env:"name"`
			Config     *container.Config     `env:"config"`
			HostConfig *container.HostConfig `env:"host_config"`
		}
		if err := env.Decode(&got); err != nil {
			t.Fatalf("the env CreateContainer makes does not decode: %v", err)
		}
		// A bus delivers only valid UTF-8 (JSON would make anything else
		// U+FFFD).
		if utf8.ValidString(image) && got.Config.Image != image {
			t.Fatalf("image %q became %q", image, got.Config.Image)
		}
	})
}

// FuzzNetworkOptions does the same for CreateNetwork's options.
func FuzzNetworkOptions(f *testing.F) {
	names := []string{"attachable", "driver", "gateway", "internal", "ip_range", "labels", "options", "subnet"}
	idx := func(name string) byte {
		for i, n := range names {
			if n == name {
				return byte(i)
			}
		}
		f.Fatalf("no option %s", name)
		return 0
	}
	s := func(v string) []byte { return append([]byte{byte(len(v))}, v...) }
	join := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	f.Add(join(s("net1"), []byte{0}))
	f.Add(join(s("net1"), []byte{3, idx("driver"), 0}, s("bridge"), []byte{idx("subnet"), 0}, s("10.9.0.0/24"), []byte{idx("gateway"), 0}, s("10.9.0.1")))
	f.Add(join(s("net1"), []byte{2, idx("internal"), 3, 1, idx("labels"), 2, 1}, s("k"), s("v")))
	f.Add(join(s("net1"), []byte{1, idx("subnet"), 0}, s("not a subnet")))
	f.Add(join(s("net1"), []byte{1, idx("ip_range"), 9, 0, 0, 0, 0, 0, 0, 0, 1}))
	f.Add(join(s("net1"), []byte{1, 255}, s("bogus"), []byte{0, 0}))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzInput{b: data}
		name := in.str()
		options := in.options(names, 2)
		req, err := buildNetworkCreate(name, options)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		for k := range options {
			if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+k+" ") {
				t.Fatalf("unknown option %q accepted", k)
			}
		}
		if req.Name != name { // not through JSON yet
			t.Fatalf("name %q became %q", name, req.Name)
		}
		var env engine.Env
		if err := env.SetJSON("config", &req); err != nil {
			t.Fatalf("request does not encode: %v", err)
		}
		var got struct {
			Config *network.CreateRequest `env:"config"`
		}
		if err := env.Decode(&got); err != nil {
			t.Fatalf("the env CreateNetwork makes does not decode: %v", err)
		}
	})
}
