package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/godbus/dbus/v5"

	"example.org/ctr/internal/errdefs"
)

// busName is the well-known name ctrd owns on D-Bus.
const busName = "org.example.Ctr"

// busConn is ctrd's connection to a message bus, owning busName.
type busConn struct {
	conn *dbus.Conn
}

// connectBus connects to the bus --dbus names and requests busName.
// With "none" it returns nil. With "auto", a missing system bus or a name
// the bus policy does not let ctrd own is a warning and ctrd serves HTTP
// only; with an explicit choice it is an error.
func connectBus(_ context.Context, choice string, log *slog.Logger) (*busConn, error) {
	mode, err := parseDBusMode(choice)
	if err != nil {
		return nil, err
	}
	var conn *dbus.Conn
	switch mode.kind {
	case "none":
		return nil, nil
	case "auto", "system":
		conn, err = dbus.ConnectSystemBus()
	case "session":
		conn, err = dbus.ConnectSessionBus()
	case "address":
		conn, err = dbus.Connect(mode.address)
	}
	if err == nil {
		var reply dbus.RequestNameReply
		reply, err = conn.RequestName(busName, dbus.NameFlagDoNotQueue)
		if err == nil && reply != dbus.RequestNameReplyPrimaryOwner {
			err = errdefs.Conflict("the name %s is already owned on the bus", busName)
		}
		if err != nil {
			conn.Close()
		}
	}
	if err != nil {
		if mode.kind == "auto" {
			log.Warn("D-Bus unavailable; serving HTTP only", "dbus", choice, "error", err)
			return nil, nil
		}
		return nil, errdefs.Unavailable("--dbus=%s: %v", choice, err)
	}
	log.Info("owning D-Bus name", "name", busName, "dbus", choice)
	return &busConn{conn: conn}, nil
}

// close releases the name and closes the connection.
func (b *busConn) close() error {
	if _, err := b.conn.ReleaseName(busName); err != nil {
		b.conn.Close()
		return fmt.Errorf("dbus: release %s: %w", busName, err)
	}
	return b.conn.Close()
}
