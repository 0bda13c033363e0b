package logger

import (
	"path/filepath"

	"example.org/ctr/internal/errdefs"
)

// JSONFilePath is where the json-file driver writes a container's log:
// Dir/ID-json.log, as Docker's (rotated files get ".1", ".2", …).
func JSONFilePath(info Info) string {
	return filepath.Join(info.Dir, info.ContainerID+"-json.log")
}

// jsonFileLimits reads max-size (default: no limit) and max-file
// (default 1), Docker's json-file defaults.
func jsonFileLimits(cfg map[string]string) (int64, int, error) {
	return fileLimits(cfg, -1, 1)
}

// NewJSONFile opens the json-file driver for info's container: Docker's
// format and file, the local driver's writer.
func NewJSONFile(info Info) (*Local, error) {
	maxSize, maxFile, err := jsonFileLimits(info.Config)
	if err != nil {
		return nil, err
	}
	if info.Dir == "" || info.ContainerID == "" {
		return nil, errdefs.InvalidArgument("json-file log driver: no container folder or id")
	}
	compress := info.Config["compress"] == "true"
	l := &Local{name: "json-file", compress: compress, path: JSONFilePath(info), maxSize: maxSize, maxFile: maxFile}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}
