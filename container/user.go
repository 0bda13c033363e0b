package container

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"example.org/ctr/drivers/exec"
	"example.org/ctr/internal/errdefs"
)

// passwdEntry and groupEntry are lines of the image's /etc/passwd and
// /etc/group.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// readColonFile reads a colon-separated file inside rootfs (symbolic links
// cannot lead out of it); a missing file has no lines.
func readColonFile(rootfs, path string) ([][]string, error) {
	p, err := securejoin.SecureJoin(rootfs, path)
	if err != nil {
		return nil, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out, sc.Err()
}

func readPasswd(rootfs string) []passwdEntry {
	lines, _ := readColonFile(rootfs, "/etc/passwd")
	var out []passwdEntry
	for _, f := range lines {
		if len(f) < 4 {
			continue
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		e := passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid)}
		if len(f) >= 6 {
			e.home = f[5]
		}
		out = append(out, e)
	}
	return out
}

func readGroup(rootfs string) []groupEntry {
	lines, _ := readColonFile(rootfs, "/etc/group")
	var out []groupEntry
	for _, f := range lines {
		if len(f) < 3 {
			continue
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue
		}
		e := groupEntry{name: f[0], gid: uint32(gid)}
		if len(f) >= 4 && f[3] != "" {
			e.members = strings.Split(f[3], ",")
		}
		out = append(out, e)
	}
	return out
}

// resolveUser turns docker's --user ("name", "uid", "name:group",
// "uid:gid", …) into ids, with the image's /etc/passwd and /etc/group
// under rootfs, and adds the groups the user is a member of and the extra
// groups (--group-add). It returns the user's home folder too ("/" when
// unknown).
func resolveUser(rootfs, spec string, groupAdd []string) (exec.User, string, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	passwd := readPasswd(rootfs)
	groups := readGroup(rootfs)
	var u exec.User
	home := "/"
	name := ""
	switch {
	case userPart == "":
		userPart = "0"
		fallthrough
	default:
		found := false
		if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
			u.UID = uint32(n)
			for _, p := range passwd {
				if p.uid == u.UID {
					u.GID, home, name, found = p.gid, p.home, p.name, true
					break
				}
			}
			if !found {
				found = true // a numeric uid needs no entry; gid 0 then
			}
		} else {
			for _, p := range passwd {
				if p.name == userPart {
					u.UID, u.GID, home, name, found = p.uid, p.gid, p.home, p.name, true
					break
				}
			}
		}
		if !found {
			return exec.User{}, "", errdefs.InvalidArgument("unable to find user %s: no matching entries in passwd file", userPart)
		}
	}
	if hasGroup {
		gid, err := lookupGroup(groups, groupPart)
		if err != nil {
			return exec.User{}, "", err
		}
		u.GID = gid
	}
	seen := map[uint32]bool{}
	if name != "" && !hasGroup {
		for _, g := range groups {
			for _, m := range g.members {
				if m == name && !seen[g.gid] {
					seen[g.gid] = true
					u.AdditionalGids = append(u.AdditionalGids, g.gid)
				}
			}
		}
	}
	for _, ga := range groupAdd {
		gid, err := lookupGroup(groups, ga)
		if err != nil {
			return exec.User{}, "", err
		}
		if !seen[gid] {
			seen[gid] = true
			u.AdditionalGids = append(u.AdditionalGids, gid)
		}
	}
	if home == "" {
		home = "/"
	}
	return u, home, nil
}

func lookupGroup(groups []groupEntry, g string) (uint32, error) {
	if n, err := strconv.ParseUint(g, 10, 32); err == nil {
		return uint32(n), nil
	}
	for _, e := range groups {
		if e.name == g {
			return e.gid, nil
		}
	}
	return 0, errdefs.InvalidArgument("unable to find group %s: no matching entries in group file", g)
}

// makeWorkdir creates the working folder in the root file system when it
// is missing, owned by the process's user, as Docker does.
func makeWorkdir(rootfs, dir string, u exec.User) error {
	if dir == "" || dir == "/" {
		return nil
	}
	p, err := securejoin.SecureJoin(rootfs, dir)
	if err != nil {
		return errdefs.InvalidArgument("working directory %s: %v", dir, err)
	}
	if st, err := os.Stat(p); err == nil {
		if !st.IsDir() {
			return errdefs.InvalidArgument("working directory %s is not a folder", dir)
		}
		return nil
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("create working directory %s: %w", dir, err)
	}
	return os.Chown(p, int(u.UID), int(u.GID))
}
