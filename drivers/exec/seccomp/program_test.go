package seccomp

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TestProgramJSON: a program goes through JSON as it is, in its compact
// form, whose bytes are the kernel's sock_filter array; the older form, an
// array of instructions, still decodes; a length that is not whole
// instructions is refused.
func TestProgramJSON(t *testing.T) {
	p := defaultProfile(t, "CAP_CHOWN")
	b, err := json.Marshal(struct {
		Seccomp Program `json:",omitempty"`
	}{p})
	if err != nil {
		t.Fatal(err)
	}
	var back struct{ Seccomp Program }
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Seccomp, p) {
		t.Fatalf("round trip changed the program (%d → %d instructions)", len(p), len(back.Seccomp))
	}
	t.Logf("docker's profile: %d instructions, %d bytes of JSON", len(p), len(b))
	// The encoded bytes are the kernel's struct sock_filter array.
	var raw []byte
	if err := json.Unmarshal(b[len(`{"Seccomp":`):len(b)-1], &raw); err != nil {
		t.Fatal(err)
	}
	kernel := unsafe.Slice((*byte)(unsafe.Pointer(&p[0])), len(p)*int(unsafe.Sizeof(unix.SockFilter{})))
	if !slices.Equal(raw, kernel) {
		t.Error("the encoded bytes are not the sock_filter array")
	}
	old, _ := json.Marshal([]bpf.RawInstruction(p[:3]))
	var q Program
	if err := json.Unmarshal(old, &q); err != nil || !slices.Equal(q, p[:3]) {
		t.Errorf("the older form: %v, %v", q, err)
	}
	// Empty: omitted, and "" decodes to no program.
	if b, _ := json.Marshal(struct {
		Seccomp Program `json:",omitempty"`
	}{}); string(b) != "{}" {
		t.Errorf("an empty program: %s", b)
	}
	if err := json.Unmarshal([]byte(`""`), &q); err != nil || q != nil {
		t.Errorf(`"": %v, %v`, q, err)
	}
	if err := json.Unmarshal([]byte(`"AAAA"`), &q); err == nil || !strings.Contains(err.Error(), "not a multiple of 8") {
		t.Errorf("3 bytes: %v", err)
	}
}

// BenchmarkProgramJSON is what handing docker's compiled profile to the
// container's init costs in JSON, there and back.
func BenchmarkProgramJSON(b *testing.B) {
	p := defaultProfile(b, "CAP_CHOWN")
	for i := 0; i < b.N; i++ {
		bs, err := json.Marshal(p)
		if err != nil {
			b.Fatal(err)
		}
		var q Program
		if err := json.Unmarshal(bs, &q); err != nil {
			b.Fatal(err)
		}
	}
}
