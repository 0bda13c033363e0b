package registry

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"example.org/ctr/internal/errdefs"
)

// AuthConfig is docker's AuthConfig as the X-Registry-Auth header and
// POST /auth carry it.
type AuthConfig struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	Email         string `json:"email,omitempty"`
	ServerAddress string `json:"serveraddress,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// Credentials returns the credentials the config holds; nil for none.
// An "auth" field (base64 of user:password) is read when username is
// empty.
func (a AuthConfig) Credentials() (*Credentials, error) {
	c := Credentials{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
	if c.Username == "" && a.Auth != "" {
		b, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return nil, errdefs.InvalidArgument("invalid auth: %v", err)
		}
		user, pass, ok := strings.Cut(string(b), ":")
		if !ok {
			return nil, errdefs.InvalidArgument("invalid auth: want base64 of user:password")
		}
		c.Username, c.Password = user, pass
	}
	if c == (Credentials{}) {
		return nil, nil
	}
	return &c, nil
}

// DecodeHeaderBase64 decodes the base64url of the docker CLI's
// X-Registry-Auth and X-Registry-Config headers, padded or not.
func DecodeHeaderBase64(h string) ([]byte, error) {
	b, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		b, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(h, "="))
	}
	return b, err
}

// DecodeAuthHeader reads an X-Registry-Auth header: base64url (padded or
// not) of an AuthConfig's JSON. "" and "{}" are no credentials.
func DecodeAuthHeader(h string) (*Credentials, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil, nil
	}
	b, err := DecodeHeaderBase64(h)
	if err != nil {
		// Older clients send the JSON itself.
		b = []byte(h)
	}
	var a AuthConfig
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, errdefs.InvalidArgument("invalid X-Registry-Auth header: %v", err)
	}
	return a.Credentials()
}
