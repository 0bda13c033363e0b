package seccomp

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"

	"golang.org/x/net/bpf"

	"example.org/ctr/internal/errdefs"
)

// MarshalJSON encodes p as a JSON string: the base64 of its sock_filter
// array, 8 bytes an instruction as the kernel reads them on x86_64 (code
// and K little endian). A start hands the program to the container's init
// as JSON; as an array of objects docker's profile took 35 KB and about a
// millisecond to encode and decode, as bytes 11 KB and some microseconds.
func (p Program) MarshalJSON() ([]byte, error) {
	b := make([]byte, 8*len(p))
	for i, r := range p {
		binary.LittleEndian.PutUint16(b[8*i:], r.Op)
		b[8*i+2], b[8*i+3] = r.Jt, r.Jf
		binary.LittleEndian.PutUint32(b[8*i+4:], r.K)
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(b))+2)
	out[0], out[len(out)-1] = '"', '"'
	base64.StdEncoding.Encode(out[1:], b)
	return out, nil
}

// UnmarshalJSON decodes what MarshalJSON encodes, and also the array of
// instruction objects that ctrd wrote before it (a container's monitor
// may be older than the ctrd that starts the container).
func (p *Program) UnmarshalJSON(data []byte) error {
	if d := bytes.TrimSpace(data); len(d) > 0 && d[0] == '[' {
		var raw []bpf.RawInstruction
		if err := json.Unmarshal(d, &raw); err != nil {
			return err
		}
		*p = raw
		return nil
	}
	var b []byte
	d := bytes.TrimSpace(data)
	if len(d) >= 2 && d[0] == '"' && d[len(d)-1] == '"' && bytes.IndexByte(d, '\\') < 0 {
		// Base64 needs no escapes: decoded as it is, without a second
		// pass of the JSON decoder.
		b = make([]byte, base64.StdEncoding.DecodedLen(len(d)-2))
		n, err := base64.StdEncoding.Decode(b, d[1:len(d)-1])
		if err != nil {
			return errdefs.InvalidArgument("seccomp: the program is not base64: %v", err)
		}
		b = b[:n]
	} else if err := json.Unmarshal(data, &b); err != nil {
		return err
	}
	if len(b)%8 != 0 {
		return errdefs.InvalidArgument("seccomp: a program of %d bytes, not a multiple of 8", len(b))
	}
	if len(b) == 0 {
		*p = nil
		return nil
	}
	out := make(Program, len(b)/8)
	for i := range out {
		out[i] = bpf.RawInstruction{
			Op: binary.LittleEndian.Uint16(b[8*i:]),
			Jt: b[8*i+2], Jf: b[8*i+3],
			K: binary.LittleEndian.Uint32(b[8*i+4:]),
		}
	}
	*p = out
	return nil
}
