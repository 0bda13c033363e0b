package api

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"example.org/ctr/api/wire"
	"example.org/ctr/internal/errdefs"
)

// APIVersion is the newest version of the Docker Engine API that ctrd
// serves; it is sent in every reply's API-Version header.
const APIVersion = wire.APIVersion

// MinAPIVersion is the oldest version of the Docker Engine API that ctrd
// accepts in a versioned path.
const MinAPIVersion = wire.MinAPIVersion

// apiVersion is a MAJOR.MINOR version of the Docker Engine API.
type apiVersion struct{ major, minor int }

func (v apiVersion) less(o apiVersion) bool {
	return v.major < o.major || (v.major == o.major && v.minor < o.minor)
}

var versionRE = regexp.MustCompile(`^([0-9]+)\.([0-9]+)$`)

// parseAPIVersion parses "1.50".
func parseAPIVersion(s string) (apiVersion, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return apiVersion{}, errdefs.InvalidArgument("malformed API version %q: want MAJOR.MINOR, such as %s", s, APIVersion)
	}
	major, err1 := strconv.Atoi(m[1])
	minor, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return apiVersion{}, errdefs.InvalidArgument("malformed API version %q: number out of range", s)
	}
	return apiVersion{major, minor}, nil
}

func mustParseAPIVersion(s string) apiVersion {
	v, err := parseAPIVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

var (
	maxVersion = mustParseAPIVersion(APIVersion)
	minVersion = mustParseAPIVersion(MinAPIVersion)
)

// checkAPIVersion returns an InvalidArgument error, worded as Docker's,
// when the client's version s is malformed or out of range.
func checkAPIVersion(s string) error {
	v, err := parseAPIVersion(s)
	if err != nil {
		return err
	}
	if maxVersion.less(v) {
		return errdefs.InvalidArgument("client version %s is too new. Maximum supported API version is %s", s, APIVersion)
	}
	if v.less(minVersion) {
		return errdefs.InvalidArgument("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", s, MinAPIVersion)
	}
	return nil
}

// stripVersion serves the Docker Engine API's versioned paths: a request
// for /v1.50/info is checked against the supported range and then served
// as /info. A first path segment that starts with "v" and a digit is taken
// for a version; when it is not MAJOR.MINOR or out of range, the reply is
// 400 with Docker's message.
func stripVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if len(path) > 2 && path[1] == 'v' && path[2] >= '0' && path[2] <= '9' {
			seg, rest, _ := strings.Cut(path[2:], "/")
			if err := checkAPIVersion(seg); err != nil {
				writeError(w, err)
				return
			}
			u := *r.URL
			u.Path = "/" + rest
			u.RawPath = ""
			r = r.WithContext(r.Context())
			r.URL = &u
		}
		next.ServeHTTP(w, r)
	})
}
