package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Htpasswd is an htpasswd line for user "bench", password "bench"
// (bcrypt), for tests only.
const Htpasswd = "bench:$2b$05$BoG9JQJzyFceUfdbrhzX2.asQWvRgafmgT/b80Xf4sVA8f8vD8cKO\n"

// TokenServer is a small bearer-token server of the docker registry
// token protocol (https://distribution.github.io/distribution/spec/auth/token/):
// it gives a signed JWT granting what is asked to a user with the right
// password, and 401 otherwise.
type TokenServer struct {
	// Auth is the registry's configuration for this server.
	Auth *TokenAuth
	// User and Password are the one account.
	User, Password string
	// Garbage makes the server answer nonsense.
	Garbage bool
	// NoOAuth makes the server answer 404 to OAuth2 POSTs, as token
	// servers that only have the GET flow do.
	NoOAuth bool
	key     *ecdsa.PrivateKey
	der     []byte

	mu sync.Mutex
	// refresh maps the refresh tokens given out to their user.
	refresh map[string]string
	// Grants counts the tokens given, by grant ("basic" for the GET
	// flow, "password" and "refresh_token" for OAuth2).
	Grants map[string]int
}

// StartTokenServer serves tokens on a free loopback port until the test
// ends. The realm names it "localhost": go-containerregistry refuses a
// realm on a loopback or private IP literal other than the registry's.
func StartTokenServer(t testing.TB, user, password string) *TokenServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ctr-test-token"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "token.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &TokenServer{User: user, Password: password, key: key, der: der, refresh: map[string]string{}, Grants: map[string]int{},
		Auth: &TokenAuth{Realm: "http://localhost:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port) + "/token", Issuer: "ctr-test-issuer", Service: "ctr-test-registry", RootCertBundle: bundle}}
	srv := &http.Server{Handler: http.HandlerFunc(ts.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ts
}

type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// GrantCount is how many tokens were given for grant ("basic",
// "password", "refresh_token").
func (ts *TokenServer) GrantCount(grant string) int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.Grants[grant]
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"` + msg + `"}]}`))
}

// serve answers the GET flow (basic auth; offline_token=true also gives
// a refresh token, as docker's login asks) and the OAuth2 POST flow
// (https://distribution.github.io/distribution/spec/auth/oauth/):
// grant_type=password gives a refresh token with the access token,
// grant_type=refresh_token takes it back.
func (ts *TokenServer) serve(w http.ResponseWriter, r *http.Request) {
	if ts.Garbage {
		_, _ = w.Write([]byte("<html>this is not a token</html>"))
		return
	}
	var user, grant string
	var scopes []string
	offline := false
	switch r.Method {
	case http.MethodPost:
		if ts.NoOAuth {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		grant = r.PostForm.Get("grant_type")
		switch grant {
		case "password":
			if r.PostForm.Get("username") != ts.User || r.PostForm.Get("password") != ts.Password {
				unauthorized(w, "incorrect username or password")
				return
			}
			user, offline = ts.User, r.PostForm.Get("access_type") == "offline"
		case "refresh_token":
			ts.mu.Lock()
			user = ts.refresh[r.PostForm.Get("refresh_token")]
			ts.mu.Unlock()
			if user == "" {
				unauthorized(w, "invalid refresh token")
				return
			}
		default:
			http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
			return
		}
		scopes = strings.Fields(r.PostForm.Get("scope"))
	default:
		u, pass, ok := r.BasicAuth()
		if !ok || u != ts.User || pass != ts.Password {
			unauthorized(w, "incorrect username or password")
			return
		}
		user, grant, scopes = u, "basic", r.URL.Query()["scope"]
		// A server without OAuth2 has no use for refresh tokens.
		offline = r.URL.Query().Get("offline_token") == "true" && !ts.NoOAuth
	}
	ts.mu.Lock()
	ts.Grants[grant]++
	ts.mu.Unlock()
	var grants []access
	for _, sc := range scopes {
		parts := strings.Split(sc, ":")
		if len(parts) != 3 {
			continue
		}
		grants = append(grants, access{Type: parts[0], Name: parts[1], Actions: strings.Split(parts[2], ",")})
	}
	now := time.Now()
	claims := map[string]any{"iss": ts.Auth.Issuer, "sub": user, "aud": ts.Auth.Service,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(big.NewInt(now.UnixNano()).Bytes()), "access": grants}
	header := map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(ts.der)}}
	hb, _ := json.Marshal(header)
	cb, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(cb)
	sum := sha256.Sum256([]byte(signing))
	rr, ss, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sig := make([]byte, 64)
	rr.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	tok := signing + "." + base64.RawURLEncoding.EncodeToString(sig)
	reply := map[string]any{"token": tok, "access_token": tok, "expires_in": 300, "issued_at": now.UTC().Format(time.RFC3339)}
	if offline {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		rt := "ctr-test-refresh-" + base64.RawURLEncoding.EncodeToString(b)
		ts.mu.Lock()
		ts.refresh[rt] = user
		ts.mu.Unlock()
		reply["refresh_token"] = rt
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(reply)
}
