package api_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"example.org/ctr/api"
	"example.org/ctr/engine"
)

// TestBuildRoutes: /_ping says Builder-Version 1 (the docker CLI then
// uses the classic builder); POST /build hands the query to the build job
// (repeated parameters as JSON lists) and the body as its stdin; POST
// /commit hands the query and the body's config to the commit job and
// answers 201. The jobs are recorders here; builder's root tests run the
// real ones.
func TestBuildRoutes(t *testing.T) {
	eng := engine.New(nil)
	envs := map[string]map[string]string{}
	var stdin string
	for _, name := range []string{"build", "commit"} {
		err := eng.Register(engine.Descriptor{Name: name, Handler: func(ctx context.Context, job *engine.Job) error {
			envs[job.Name] = job.Env.Map()
			if job.Name == "build" {
				b, _ := io.ReadAll(job.Stdin)
				stdin = string(b)
				_, _ = io.WriteString(job.Stdout, `{"stream":"Step 1/1 : FROM scratch\n"}`+"\n")
				return nil
			}
			job.Reply(map[string]string{"Id": "sha256:abc"})
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	eng.Freeze()
	h := api.NewServer(eng, nil, api.Options{}).Handler()

	rec := doImage(t, h, "GET", "/_ping", nil)
	if rec.Header().Get("Builder-Version") != "1" {
		t.Errorf("/_ping's Builder-Version: %q", rec.Header().Get("Builder-Version"))
	}
	req := httptest.NewRequest("POST", `/v1.47/build?t=a:1&t=b&q=1&nocache=1&rm=0&forcerm=1&buildargs={"A":"1"}&labels={"l":"v"}&target=s&networkmode=none&extrahosts=h:1.2.3.4&extrahosts=i:5.6.7.8&dockerfile=sub/Df`, strings.NewReader("the context"))
	req.Header.Set("X-Registry-Config", "e30=")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "Step 1/1") {
		t.Fatalf("POST /build: %d %s", rec.Code, rec.Body)
	}
	want := map[string]string{"t": `["a:1","b"]`, "q": "true", "nocache": "true", "rm": "false", "forcerm": "true",
		"buildargs": `{"A":"1"}`, "labels": `{"l":"v"}`, "target": "s", "networkmode": "none",
		"extrahosts": `["h:1.2.3.4","i:5.6.7.8"]`, "dockerfile": "sub/Df", "registry_config": "e30="}
	for k, v := range want {
		if got := envs["build"][k]; got != v {
			t.Errorf("build env %s = %q, want %q", k, got, v)
		}
	}
	if stdin != "the context" {
		t.Errorf("build stdin: %q", stdin)
	}
	rec = doImage(t, h, "POST", `/commit?container=c1&repo=r&tag=t&comment=m&author=a&pause=0&changes=ENV+X%3D1&changes=CMD+true`, []byte(`{"Cmd":["sh"]}`))
	if rec.Code != 201 || !strings.Contains(rec.Body.String(), `"Id":"sha256:abc"`) {
		t.Errorf("POST /commit: %d %s", rec.Code, rec.Body)
	}
	for k, v := range map[string]string{"container": "c1", "repo": "r", "tag": "t", "comment": "m", "author": "a", "pause": "false", "changes": `["ENV X=1","CMD true"]`} {
		if got := envs["commit"][k]; got != v {
			t.Errorf("commit env %s = %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(envs["commit"]["config"], `"Cmd":["sh"]`) {
		t.Errorf("commit config: %s", envs["commit"]["config"])
	}
}
