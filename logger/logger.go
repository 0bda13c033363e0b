// Package logger holds ctr's container log drivers: where the lines a
// container writes to its stdout and stderr go.
//
// A container's monitor (package monitor) owns the container's stdio; it
// cuts what the container writes into lines (LineWriter) and hands each to
// the container's Driver. ctrd reads the logs back for `logs` with a
// Reader, when the driver can be read.
//
// The drivers:
//
//	json-file the default, Docker's: one JSON object a line ({"log":…,
//	          "stream":…,"time":…}) in the container's folder, ID-json.log,
//	          rotated by size (max-size, unlimited by default; max-file, 1;
//	          compress gzips the rotated files);
//	          readable, followable
//	local     the same format in container.log, rotated by default
//	          (max-size 20m, max-file 5)
//	journald  the systemd journal, with Docker's fields (CONTAINER_ID,
//	          CONTAINER_ID_FULL, CONTAINER_NAME, CONTAINER_TAG, IMAGE_NAME,
//	          SYSLOG_IDENTIFIER); option tag; read back through journalctl
//	none      nothing is kept
//
// Drivers know nothing of the engine or of any transport.
package logger

import (
	"context"
	"sort"
	"strings"
	"time"

	"example.org/ctr/internal/errdefs"
)

// The streams a line can come from.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// MaxLine is the longest line a driver gets in one Message; a longer line
// is cut into several, all but the last marked Partial.
const MaxLine = 16 << 10

// Message is one line of a container's output.
type Message struct {
	// Stream is Stdout or Stderr.
	Stream string
	// Line is the text, with its trailing newline when it had one.
	Line []byte
	// Time is when the monitor read it.
	Time time.Time
	// Partial is set when the line goes on in the next message.
	Partial bool
}

// Info describes the container a driver logs for.
type Info struct {
	// ContainerID is the full id.
	ContainerID string
	// ContainerName is the name, without Docker's leading "/".
	ContainerName string
	// ImageName is the image as the user named it; ImageID its id.
	ImageName string
	ImageID   string
	// Dir is the container's folder, where the local driver keeps its
	// files.
	Dir string
	// Config holds the driver's options (docker --log-opt).
	Config map[string]string
}

// Driver receives a container's log lines. Log and Close are called from
// one goroutine at a time.
type Driver interface {
	// Name is the driver's name, such as "local".
	Name() string
	// Log records m. The driver may keep m.Line only until Log returns.
	Log(m *Message) error
	// Close flushes and releases the driver.
	Close() error
}

// ReadConfig selects the lines a Reader returns.
type ReadConfig struct {
	// Since and Until bound the lines by time; zero is open.
	Since, Until time.Time
	// Tail, when >= 0, starts with the last Tail lines (of those in
	// the time bounds); -1 is all.
	Tail int
	// Follow keeps reading new lines as they are written, until ctx ends
	// or Stop is closed (after which what was written is read to the end).
	Follow bool
	// Stop ends a Follow once the writer is done (the container stopped).
	Stop <-chan struct{}
}

// Reader reads a container's logs back.
type Reader interface {
	// ReadLogs calls send with each selected line, oldest first. It
	// returns nil when done, send's error, or ctx's error.
	ReadLogs(ctx context.Context, cfg ReadConfig, send func(*Message) error) error
}

// Drivers lists the names of the log drivers, sorted.
func Drivers() []string {
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// driverSpec is what ctr knows about a driver.
type driverSpec struct {
	options []string
	open    func(Info) (Driver, error)
	reader  func(Info) (Reader, error)
}

var drivers = map[string]driverSpec{
	"local": {
		options: []string{"max-size", "max-file"},
		open:    func(i Info) (Driver, error) { return NewLocal(i) },
		reader:  func(i Info) (Reader, error) { return NewLocalReader(i.Dir), nil },
	},
	"json-file": {
		options: []string{"max-size", "max-file", "compress"},
		open:    func(i Info) (Driver, error) { return NewJSONFile(i) },
		reader:  func(i Info) (Reader, error) { return newFileReader(JSONFilePath(i)), nil },
	},
	"journald": {
		options: []string{"tag", "labels", "env"},
		open:    func(i Info) (Driver, error) { return NewJournald(i) },
		reader:  func(i Info) (Reader, error) { return NewJournaldReader(i.ContainerID), nil },
	},
	"none": {
		open: func(Info) (Driver, error) { return noneDriver{}, nil },
	},
}

// DefaultDriver is the driver of a container that names none (and that
// the daemon's configuration does not choose): Docker's json-file.
const DefaultDriver = "json-file"

// Validate checks a driver name and its options, as `create` does before
// anything is made: an unknown driver or option is an InvalidArgument
// error worded as Docker's.
func Validate(name string, config map[string]string) error {
	if name == "" {
		name = DefaultDriver
	}
	spec, ok := drivers[name]
	if !ok {
		return errdefs.InvalidArgument("failed to create logger: logger: no log driver named '%s' is registered (known: %s)", name, strings.Join(Drivers(), ", "))
	}
	for k := range config {
		known := false
		for _, o := range spec.options {
			known = known || o == k
		}
		if !known {
			return errdefs.InvalidArgument("unknown log opt '%s' for %s log driver", k, name)
		}
	}
	switch name {
	case "local":
		if _, _, err := localLimits(config); err != nil {
			return err
		}
	case "json-file":
		if _, _, err := jsonFileLimits(config); err != nil {
			return err
		}
		if v, ok := config["compress"]; ok && v != "false" && v != "true" {
			return errdefs.InvalidArgument("invalid log opt compress %q: want true or false", v)
		}
	}
	return nil
}

// New opens driver name for the container info describes.
func New(name string, info Info) (Driver, error) {
	if name == "" {
		name = DefaultDriver
	}
	if err := Validate(name, info.Config); err != nil {
		return nil, err
	}
	return drivers[name].open(info)
}

// NewReader returns a reader of the logs driver name wrote for the
// container info describes: NotImplemented for a driver that cannot be
// read back, such as none.
func NewReader(name string, info Info) (Reader, error) {
	if name == "" {
		name = DefaultDriver
	}
	spec, ok := drivers[name]
	if !ok {
		return nil, errdefs.InvalidArgument("no log driver named %q", name)
	}
	if spec.reader == nil {
		return nil, errdefs.NotImplemented("configured logging driver does not support reading")
	}
	return spec.reader(info)
}

type noneDriver struct{}

func (noneDriver) Name() string       { return "none" }
func (noneDriver) Log(*Message) error { return nil }
func (noneDriver) Close() error       { return nil }
