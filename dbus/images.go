package dbus

import (
	"context"
	"os"
	"strconv"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// ImageRow is a row of ListImages: (s id, s created, as repo tags, x size).
type ImageRow struct {
	ID       string
	Created  string
	RepoTags []string
	Size     int64
}

// ListImages runs the images job: every image, newest first, with when it
// was created (RFC 3339, UTC) and its tags.
func (m manager) ListImages(sender godbus.Sender) ([]ImageRow, *godbus.Error) {
	ctx, cancel := m.s.callContext()
	defer cancel()
	job, err := m.s.runCall(ctx, sender, "images", nil, nil)
	if err != nil {
		return nil, busError(err)
	}
	var rows []struct {
		ID       string `json:"Id"`
		Created  int64
		RepoTags []string
		Size     int64
	}
	if err := decodeReply(job, &rows); err != nil {
		return nil, busError(err)
	}
	out := make([]ImageRow, 0, len(rows))
	for _, r := range rows {
		tags := busStrings(r.RepoTags)
		if tags == nil {
			tags = []string{}
		}
		out = append(out, ImageRow{
			ID:       busString(r.ID),
			Created:  time.Unix(r.Created, 0).UTC().Format(time.RFC3339),
			RepoTags: tags,
			Size:     r.Size,
		})
	}
	return out, nil
}

// RemoveImage runs the image_delete job: it untags image (a reference) or
// removes it (an id); force removes an image with several tags or used by
// stopped containers.
func (m manager) RemoveImage(sender godbus.Sender, image string, force bool) *godbus.Error {
	ctx, cancel := m.s.callContext()
	defer cancel()
	var env engine.Env
	if force {
		env.Set("force", "true")
	}
	_, err := m.s.runCall(ctx, sender, "image_delete", []string{image}, env)
	return busError(err)
}

// LoadImage starts the load job in the background with fd as its input
// and returns the job's object; see org.example.Ctr.xml.
func (m manager) LoadImage(sender godbus.Sender, fd godbus.UnixFD) (godbus.ObjectPath, *godbus.Error) {
	s := m.s
	ctx, cancel := s.callContext()
	defer cancel()
	// The method owns fd (see guardFDs): it is closed when the job ends,
	// or now if no job starts.
	in, err := openInput(int(fd))
	if err != nil {
		return "", busError(err)
	}
	if err := s.mayRun(ctx, sender, "load"); err != nil {
		in.Close()
		return "", busError(err)
	}
	job := s.newJob(s.withCaller(ctx, sender), "load")
	job.Env.Set("quiet", "true")
	// The reader gives up when jctx ends: when the job is cancelled
	// through ctrd's D-Bus (Job.Cancel), a load blocked on a pipe nobody
	// writes to ends too.
	jctx, jcancel := context.WithCancel(s.ctx)
	_ = job.Stdin.Add(ctxReader{ctx: jctx, f: in})
	unblock := context.AfterFunc(jctx, func() { _ = in.SetReadDeadline(time.Now()) })
	id, err := s.startBackground(ctx, jctx, jcancel, "LoadImage", job, func() {
		unblock()
		in.Close()
	})
	if err != nil {
		return "", busError(err)
	}
	s.out.flush(ctx)
	return jobPath(id), nil
}

// openInput takes ownership of a passed file descriptor as a job's input.
// It must be open for reading, and a regular file, a pipe or a socket;
// otherwise it is closed and the error is InvalidArgument. Pipes and
// sockets are made non-blocking, so that a read can be interrupted (this
// changes the flags of the open file the sender shares).
func openInput(fd int) (*os.File, error) {
	if fd < 0 {
		return nil, errdefs.InvalidArgument("no file descriptor was passed")
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return nil, errdefs.InvalidArgument("the passed file descriptor: %v", err)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		_ = unix.Close(fd)
		return nil, errdefs.InvalidArgument("the passed file descriptor: %v", err)
	}
	if flags&unix.O_ACCMODE == unix.O_WRONLY || flags&unix.O_PATH != 0 {
		_ = unix.Close(fd)
		return nil, errdefs.InvalidArgument("the passed file descriptor is not open for reading")
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.SetNonblock(fd, true); err != nil {
			_ = unix.Close(fd)
			return nil, errdefs.InvalidArgument("the passed file descriptor: %v", err)
		}
	default:
		_ = unix.Close(fd)
		return nil, errdefs.InvalidArgument("the passed file descriptor is not a regular file, a pipe or a socket (mode %s)", strconv.FormatUint(uint64(st.Mode), 8))
	}
	return os.NewFile(uintptr(fd), "fd"), nil
}

// ctxReader reads f until ctx ends; then it fails with ctx's error, so
// that the job's error is of class Canceled.
type ctxReader struct {
	ctx context.Context
	f   *os.File
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.f.Read(p)
	if err != nil && r.ctx.Err() != nil {
		return n, r.ctx.Err()
	}
	return n, err
}
