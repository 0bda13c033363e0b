package image

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"

	"example.org/ctr/engine"
	ctrevents "example.org/ctr/events"
	"example.org/ctr/internal/errdefs"
)

type fakeUsage map[digest.Digest]string

func (f fakeUsage) InUse(id digest.Digest) (string, bool) { c, ok := f[id]; return c, ok }

func newTestService(t *testing.T) (*engine.Engine, *Service, *ctrevents.Log) {
	t.Helper()
	s, _ := newTestStore(t)
	log := ctrevents.New(0, nil)
	svc := NewService(s, log, fakeUsage{})
	eng := engine.New(nil)
	if err := svc.Install(eng); err != nil {
		t.Fatal(err)
	}
	return eng, svc, log
}

// run runs a job and returns its reply and stdout.
func run(t *testing.T, eng *engine.Engine, name string, stdin []byte, env map[string]string, args ...string) (any, string, error) {
	t.Helper()
	job := eng.Job(name, args...)
	job.Env = engine.EnvFromMap(env)
	if stdin != nil {
		_ = job.Stdin.Add(bytes.NewReader(stdin))
	}
	out := job.Stdout.AddBuffer()
	err := job.Run(context.Background())
	res, _ := job.Result()
	return res, out.String(), err
}

func TestJobs(t *testing.T) {
	eng, svc, log := newTestService(t)
	base, child := twoImages(t)
	_, out, err := run(t, eng, "load", dockerArchive(t, false, base, child), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{"stream":"Loaded image: base:1\n"}`, `{"stream":"Loaded image: child:latest\n"}`, `"status":"Loading layer"`} {
		if !strings.Contains(out, want) {
			t.Errorf("load output lacks %s:\n%s", want, out)
		}
	}
	// quiet: no progress.
	_, out, err = run(t, eng, "load", dockerArchive(t, false, base), map[string]string{"quiet": "true"})
	if err != nil || strings.Contains(out, "Loading layer") || !strings.Contains(out, "Loaded image: base:1") {
		t.Errorf("quiet load: %v\n%s", err, out)
	}

	list := func(filters string) []string {
		t.Helper()
		res, _, err := run(t, eng, "images", nil, map[string]string{"filters": filters})
		if err != nil {
			t.Fatalf("images %s: %v", filters, err)
		}
		var tags []string
		for _, s := range res.([]image.Summary) {
			tags = append(tags, strings.Join(s.RepoTags, "+"))
		}
		return tags
	}
	if got := list(""); len(got) != 2 {
		t.Errorf("images = %v", got)
	}
	if got := list(`{"reference":["child"]}`); len(got) != 1 || !strings.Contains(got[0], "child:latest") {
		t.Errorf("reference=child: %v", got)
	}
	if got := list(`{"reference":{"example.org/*/child:*":true}}`); len(got) != 1 {
		t.Errorf("reference glob: %v", got)
	}
	if got := list(`{"label":["test=base"]}`); len(got) != 1 || got[0] != "base:1" {
		t.Errorf("label: %v", got)
	}
	if got := list(`{"dangling":["true"]}`); len(got) != 0 {
		t.Errorf("dangling: %v", got)
	}
	if _, _, err := run(t, eng, "images", nil, map[string]string{"filters": `{"colour":["red"]}`}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("unknown filter: %v", err)
	}

	res, _, err := run(t, eng, "image_inspect", nil, nil, "example.org/team/child:v2")
	if err != nil {
		t.Fatal(err)
	}
	ins := res.(image.InspectResponse)
	if ins.ID != string(digest.FromBytes(child.Config)) || len(ins.RootFS.Layers) != 2 || ins.Config.Cmd[0] != "child" || ins.GraphDriver.Name != testDriver {
		t.Errorf("inspect = %+v", ins)
	}
	res, _, err = run(t, eng, "history", nil, nil, "child")
	if err != nil {
		t.Fatal(err)
	}
	hist := res.([]image.HistoryResponseItem)
	if len(hist) != 3 || hist[0].ID != ins.ID || hist[0].CreatedBy != "CMD child" || hist[1].ID != "<missing>" || hist[1].Size == 0 {
		t.Errorf("history = %+v", hist)
	}

	if _, _, err := run(t, eng, "tag", nil, map[string]string{"repo": "again", "tag": "x"}, "child"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, eng, "tag", nil, map[string]string{"repo": "In Valid"}, "child"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad repo: %v", err)
	}
	svc.SetUsageChecker(fakeUsage{digest.FromBytes(child.Config): "cafe"})
	if _, _, err := run(t, eng, "image_delete", nil, map[string]string{"force": "true"}, ins.ID); !errdefs.IsConflict(err) {
		t.Errorf("delete in use: %v", err)
	}
	svc.SetUsageChecker(nil)
	res, _, err = run(t, eng, "image_delete", nil, map[string]string{"force": "1"}, ins.ID)
	if err != nil {
		t.Fatal(err)
	}
	del := res.([]image.DeleteResponse)
	if len(del) != 5 || del[0].Untagged == "" || del[3].Deleted != ins.ID {
		t.Errorf("delete = %+v", del)
	}

	// import, then save.
	rootfs := layerTar(t, fsEntry{Name: "bin/", Dir: true}, fsEntry{Name: "bin/sh", Body: "sh"})
	res, out, err = run(t, eng, "import", rootfs, map[string]string{"repo": "imp", "changes": `["CMD [\"/bin/sh\"]"]`}, "-")
	if err != nil {
		t.Fatal(err)
	}
	id := res.(ImportReply).ID
	if !strings.Contains(out, `{"status":"`+id+`"}`) {
		t.Errorf("import output lacks the id:\n%s", out)
	}
	_, out, err = run(t, eng, "save", nil, nil, "imp", "base:1")
	if err != nil || len(out) < 2048 {
		t.Fatalf("save: %v, %d bytes", err, len(out))
	}
	if _, _, err := run(t, eng, "save", nil, nil, "nosuch"); !errdefs.IsNotFound(err) {
		t.Errorf("save missing: %v", err)
	}

	var actions []string
	for _, m := range log.History(time.Unix(1, 0), time.Time{}, nil) {
		if m.Type != events.ImageEventType {
			t.Errorf("event of type %s", m.Type)
		}
		actions = append(actions, string(m.Action))
	}
	got := strings.Join(actions, " ")
	for _, want := range []string{"tag load", "untag", "delete", "import", "save"} {
		if !strings.Contains(got, want) {
			t.Errorf("events %q lack %q", got, want)
		}
	}
}

func TestChanges(t *testing.T) {
	bad := []string{"RUN x", "CMD", "EXPOSE 99999", "EXPOSE 80/icmp", `ENV A="unterminated`, "LABEL novalue"}
	for _, c := range bad {
		if _, err := ApplyChanges(emptyConfig(), []string{c}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v, want InvalidArgument", c, err)
		}
	}
	cfg, err := ApplyChanges(emptyConfig(), []string{"ENV PATH /usr/bin:/bin", "ENV A=1 B='two words'", "ENV A=3", "VOLUME /data", "STOPSIGNAL SIGINT", "cmd echo hi"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Env, ",") != "PATH=/usr/bin:/bin,A=3,B=two words" || cfg.StopSignal != "SIGINT" || len(cfg.Volumes) != 1 || strings.Join(cfg.Cmd, " ") != "/bin/sh -c echo hi" {
		t.Errorf("config = %+v", cfg)
	}
}

func emptyConfig() dockerspec.DockerOCIImageConfig { return dockerspec.DockerOCIImageConfig{} }
