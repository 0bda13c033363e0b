package container

import (
	"encoding/json"
	"testing"

	"github.com/moby/moby/api/types/container"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// FuzzCreateBody feeds POST /containers/create bodies through what the
// API and the create job do before anything is made: the API's JSON
// decoding, the job env's encoding and typed decoding, and create's
// checks of the config, the host config and --security-opt (seccomp
// profiles compiled). Nothing may panic, and a refusal is an invalid
// argument (a 400), never another class.
func FuzzCreateBody(f *testing.F) {
	for _, s := range []string{
		`{"Image":"busybox","Cmd":["true"]}`,
		`{"Image":"busybox","Cmd":["sh"],"HostConfig":{"Memory":-1,"CapAdd":["SYS_ADMIN"],"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3}}}`,
		`{"Image":"busybox","HostConfig":{"SecurityOpt":["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":13,\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}"]}}`,
		`{"Image":"busybox","HostConfig":{"SecurityOpt":["no-new-privileges","seccomp=unconfined","label=disable"]}}`,
		`{"Image":"busybox","Env":["=x"],"HostConfig":{"Binds":["/a:/b:ro"],"Ulimits":[{"Name":"nofile","Soft":1,"Hard":2}]}}`,
		`{"Image":"","HostConfig":{"NetworkMode":"host","Privileged":true}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req container.CreateRequest
		if err := json.Unmarshal(body, &req); err != nil || req.Config == nil {
			return // the API answers 400 for these itself
		}
		env := engine.Env{}
		if err := env.SetJSON("config", req.Config); err != nil {
			return
		}
		if req.HostConfig != nil {
			if err := env.SetJSON("host_config", req.HostConfig); err != nil {
				return
			}
		}
		var cr CreateRequest
		if err := env.Decode(&cr); err != nil {
			t.Fatalf("the env the API made does not decode: %v", err)
		}
		hc := cr.HostConfig
		if hc == nil {
			hc = &container.HostConfig{}
		}
		check := func(what string, err error) bool {
			if err == nil {
				return true
			}
			if c := errdefs.ClassOf(err); c != errdefs.InvalidArgumentClass {
				t.Fatalf("%s: %v: class %v, want invalid argument", what, err, c)
			}
			return false
		}
		_ = check("config", validateConfig(cr.Config)) &&
			check("host config", validateHostConfig(hc)) &&
			check("security options", func() error { _, err := validateSecurity(hc); return err }())
	})
}

// FuzzListFilter feeds the filters query value of GET /containers/json.
func FuzzListFilter(f *testing.F) {
	for _, s := range []string{``, `{"status":{"running":true}}`, `{"label":["a=b"],"name":["x"]}`, `{"before":["x"],"exited":["0"]}`, `{"bogus":["x"]}`, `{"status":["running","nope"]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := parseListFilter(s); err != nil && errdefs.ClassOf(err) != errdefs.InvalidArgumentClass {
			t.Fatalf("%q: %v: class %v, want invalid argument", s, err, errdefs.ClassOf(err))
		}
	})
}
