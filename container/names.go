package container

import (
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"regexp"
	"strings"

	"example.org/ctr/internal/errdefs"
)

// nameRE is what a container name may be, after its optional leading "/"
// (Docker's rule).
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// validateName checks a user-given name and returns it in Docker's form,
// with a leading "/".
func validateName(name string) (string, error) {
	n := strings.TrimPrefix(name, "/")
	if !nameRE.MatchString(n) {
		return "", errdefs.InvalidArgument("Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	}
	return "/" + n, nil
}

// newID returns a new container id: 64 hex digits, not all decimal (so
// that a prefix is never taken for a number).
func newID() string {
	for {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			panic(err) // crypto/rand does not fail on Linux
		}
		id := hex.EncodeToString(b)
		if strings.ContainsAny(id[:12], "abcdef") {
			return id
		}
	}
}

// Words for generated names: adjective_noun, as Docker makes them.
var (
	nameLeft = []string{
		"agile", "bold", "brave", "bright", "calm", "clever", "cool", "crisp",
		"eager", "fair", "fancy", "fond", "gentle", "glad", "happy", "hardy",
		"jolly", "keen", "kind", "lively", "lucid", "merry", "modest", "neat",
		"nimble", "noble", "patient", "plucky", "proud", "quick", "quiet", "rapid",
		"ready", "serene", "sharp", "silent", "steady", "sturdy", "swift", "tidy",
		"vivid", "warm", "wise", "witty", "zealous",
	}
	nameRight = []string{
		"badger", "beaver", "bison", "crane", "dolphin", "eagle", "falcon", "ferret",
		"finch", "fox", "gecko", "heron", "ibis", "jackal", "kestrel", "koala",
		"lemur", "lynx", "marmot", "marten", "mole", "newt", "otter", "owl",
		"panda", "pelican", "puffin", "quail", "raven", "robin", "salmon", "seal",
		"shrew", "sparrow", "stork", "swan", "tapir", "tern", "toucan", "trout",
		"turtle", "walrus", "weasel", "wren", "yak",
	}
)

// randomName returns a generated name such as "/brave_otter"; taken
// reports the names in use, and a digit is added after a few collisions.
func randomName(taken func(string) bool) string {
	pick := func(list []string) string {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
		return list[n.Int64()]
	}
	for i := 0; ; i++ {
		name := "/" + pick(nameLeft) + "_" + pick(nameRight)
		if i >= 5 {
			n, _ := rand.Int(rand.Reader, big.NewInt(100))
			name += n.String()
		}
		if !taken(name) {
			return name
		}
	}
}
