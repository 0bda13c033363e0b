package cli

import (
	"encoding/base64"
	"encoding/json"
)

// registryConfig is the X-Registry-Config header of a build: the stored
// credentials of every registry ctrctl's file and docker's name (as the
// docker CLI sends all of its own), base64url JSON of address →
// AuthConfig; "" when none is stored. The daemon picks the entry of each
// image it pulls.
func registryConfig() string {
	var paths []string
	if p, err := ctrAuthPath(); err == nil {
		paths = append(paths, p)
	}
	paths = append(paths, dockerAuthPath())
	all := map[string]map[string]string{}
	for _, p := range paths {
		f, err := readAuthFile(p)
		if err != nil {
			continue
		}
		servers := make([]string, 0, len(f.Auths)+len(f.CredHelpers))
		for s := range f.Auths {
			servers = append(servers, s)
		}
		for s := range f.CredHelpers {
			servers = append(servers, s)
		}
		for _, s := range servers {
			if _, done := all[s]; done {
				continue
			}
			if user, pass, token, ok := storedAuth(s); ok {
				all[s] = map[string]string{"username": user, "password": pass, "identitytoken": token, "serveraddress": s}
			}
		}
	}
	if len(all) == 0 {
		return ""
	}
	b, _ := json.Marshal(all)
	return base64.URLEncoding.EncodeToString(b)
}
