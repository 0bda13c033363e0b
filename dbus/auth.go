package dbus

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"

	godbus "github.com/godbus/dbus/v5"

	"example.org/ctr/engine"
	"example.org/ctr/internal/errdefs"
)

// The bus policy (units/org.example.Ctr.conf) lets only root and group ctr
// call ctrd's methods; ctrd checks the callers of state-changing calls
// itself too, so that a policy loosened by mistake (or a bus with no
// policy, such as a session bus) never lets anyone else change state.
//
// A caller's credentials come from the bus daemon, which read them from the
// caller's socket when it connected (GetConnectionCredentials: UnixUserID,
// ProcessID, UnixGroupIDs). When the bus does not say which groups the
// caller has, they are read from /proc/PID/status (if that process still
// has the caller's uid), else from the user database. Credentials are
// cached per unique connection name, which a bus never reuses.

// creds are a bus peer's credentials; -1 when unknown.
type creds struct {
	uid, gid, pid int
	groups        []uint32
}

// maxCachedCreds bounds the credentials cache; it is emptied when full.
const maxCachedCreds = 4096

// credCache holds the credentials of the peers that called recently.
type credCache struct {
	mu sync.Mutex
	m  map[string]creds
}

func (c *credCache) get(sender string) (creds, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cr, ok := c.m[sender]
	return cr, ok
}

func (c *credCache) put(sender string, cr creds) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedCreds {
		c.m = make(map[string]creds)
	}
	c.m[sender] = cr
}

// credentials asks the bus who sender is.
func (s *Server) credentials(ctx context.Context, conn *godbus.Conn, sender string) (creds, error) {
	if cr, ok := s.creds.get(sender); ok {
		return cr, nil
	}
	if sender == "" {
		return creds{}, errdefs.PermissionDenied("the call has no sender")
	}
	var m map[string]godbus.Variant
	err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionCredentials", 0, sender).Store(&m)
	if err != nil {
		return creds{}, fmt.Errorf("credentials of %s: %w", sender, err)
	}
	cr := creds{uid: -1, gid: -1, pid: -1}
	uid, ok := m["UnixUserID"].Value().(uint32)
	if !ok {
		return creds{}, errdefs.PermissionDenied("the bus does not say which user %s is", sender)
	}
	cr.uid = int(uid)
	if pid, ok := m["ProcessID"].Value().(uint32); ok {
		cr.pid = int(pid)
	}
	groups, haveGroups := m["UnixGroupIDs"].Value().([]uint32)
	if cr.pid > 0 {
		if st, err := readProcStatus(cr.pid); err == nil && st.uid == cr.uid {
			cr.gid = st.gid
			if !haveGroups {
				groups, haveGroups = st.groups, true
			}
		}
	}
	if !haveGroups {
		groups = userGroups(cr.uid)
	}
	cr.groups = groups
	s.creds.put(sender, cr)
	return cr, nil
}

// caller returns the engine's record of who sent a call. A sender whose
// credentials cannot be read is recorded by name only.
func (s *Server) caller(ctx context.Context, conn *godbus.Conn, sender string) engine.Caller {
	c := engine.Caller{Transport: "dbus", UID: -1, GID: -1, PID: -1, Name: sender}
	if cr, err := s.credentials(ctx, conn, sender); err == nil {
		c.UID, c.GID, c.PID = cr.uid, cr.gid, cr.pid
	}
	return c
}

// authorize returns nil when sender may change state: it runs as root or
// has the server's group. Otherwise the error is PermissionDenied.
func (s *Server) authorize(ctx context.Context, conn *godbus.Conn, sender string) error {
	cr, err := s.credentials(ctx, conn, sender)
	if err != nil {
		s.log.Warn("refused a D-Bus call: cannot read the caller's credentials", "sender", sender, "error", err)
		return errdefs.PermissionDenied("cannot tell who %s is: %v", sender, err)
	}
	if cr.uid == 0 {
		return nil
	}
	if gid, ok := s.groupID(); ok && slices.Contains(cr.groups, gid) {
		return nil
	}
	return errdefs.PermissionDenied("uid %d is neither root nor in group %s", cr.uid, s.opts.Group)
}

// groupID returns the gid of the server's group, looked up once; ok is
// false when the group does not exist (then only root is let in).
func (s *Server) groupID() (uint32, bool) {
	s.groupOnce.Do(func() {
		g, err := user.LookupGroup(s.opts.Group)
		if err != nil {
			s.log.Warn("the D-Bus callers' group does not exist; only root may change state over D-Bus", "group", s.opts.Group, "error", err)
			return
		}
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return
		}
		s.gid, s.haveGID = uint32(gid), true
	})
	return s.gid, s.haveGID
}

// procStatus is what ctrd reads from /proc/PID/status.
type procStatus struct {
	uid, gid int // effective
	groups   []uint32
}

// readProcStatus reads a process's effective uid and gid and its groups
// (the primary one included).
func readProcStatus(pid int) (procStatus, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return procStatus{}, err
	}
	defer f.Close()
	st := procStatus{uid: -1, gid: -1}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			if len(fields) < 2 {
				return procStatus{}, fmt.Errorf("/proc/%d/status: short %s line", pid, key)
			}
			n, err := strconv.Atoi(fields[1])
			if err != nil {
				return procStatus{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, key, err)
			}
			if key == "Uid" {
				st.uid = n
			} else {
				st.gid = n
			}
		case "Groups":
			for _, f := range fields {
				n, err := strconv.ParseUint(f, 10, 32)
				if err != nil {
					return procStatus{}, fmt.Errorf("/proc/%d/status: Groups: %w", pid, err)
				}
				st.groups = append(st.groups, uint32(n))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return procStatus{}, err
	}
	if st.uid < 0 || st.gid < 0 {
		return procStatus{}, fmt.Errorf("/proc/%d/status: no Uid or Gid line", pid)
	}
	st.groups = append(st.groups, uint32(st.gid))
	return st, nil
}

// userGroups returns the groups of the user uid in the user database, or
// none.
func userGroups(uid int) []uint32 {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var out []uint32
	for _, id := range ids {
		if n, err := strconv.ParseUint(id, 10, 32); err == nil {
			out = append(out, uint32(n))
		}
	}
	return out
}
