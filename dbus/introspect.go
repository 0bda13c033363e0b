package dbus

import (
	_ "embed"
	"encoding/xml"
	"fmt"
	"strings"
	"sync"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"
)

// interfacesXML describes ctr's own interfaces; see the file's comment.
//
//go:embed org.example.Ctr.xml
var interfacesXML []byte

// The names of ctr's interfaces and of the standard ones ctrd implements.
const (
	ifaceManager        = "org.example.Ctr"
	ifaceJob            = "org.example.Ctr.Job"
	ifaceContainer      = "org.example.Ctr.Container"
	ifaceNetwork        = "org.example.Ctr.Network"
	ifaceIntrospectable = "org.freedesktop.DBus.Introspectable"
	ifacePeer           = "org.freedesktop.DBus.Peer"
	ifaceProperties     = "org.freedesktop.DBus.Properties"
	ifaceObjectManager  = "org.freedesktop.DBus.ObjectManager"
)

// objectManagerData is the introspection data of
// org.freedesktop.DBus.ObjectManager, which godbus does not provide.
var objectManagerData = introspect.Interface{
	Name: ifaceObjectManager,
	Methods: []introspect.Method{{
		Name: "GetManagedObjects",
		Args: []introspect.Arg{{Name: "objects", Type: "a{oa{sa{sv}}}", Direction: "out"}},
	}},
	Signals: []introspect.Signal{
		{Name: "InterfacesAdded", Args: []introspect.Arg{
			{Name: "object", Type: "o"}, {Name: "interfaces", Type: "a{sa{sv}}"}}},
		{Name: "InterfacesRemoved", Args: []introspect.Arg{
			{Name: "object", Type: "o"}, {Name: "interfaces", Type: "as"}}},
	},
}

// interfaces maps each interface name, ctr's and the standard ones, to its
// introspection data. It is parsed on first use, not at ctrd's start (a
// millisecond that a ctrd without D-Bus never needs).
var interfaces = sync.OnceValue(func() map[string]introspect.Interface {
	var node introspect.Node
	if err := xml.Unmarshal(interfacesXML, &node); err != nil {
		panic("dbus: org.example.Ctr.xml: " + err.Error())
	}
	m := map[string]introspect.Interface{
		ifaceIntrospectable: introspect.IntrospectData,
		ifacePeer:           introspect.PeerData,
		ifaceProperties:     prop.IntrospectData,
		ifaceObjectManager:  objectManagerData,
	}
	for _, i := range node.Interfaces {
		m[i.Name] = i
	}
	return m
})

// ctrInterfaces returns the names of ctr's own interfaces, in the XML
// file's order.
func ctrInterfaces() []string {
	var node introspect.Node
	_ = xml.Unmarshal(interfacesXML, &node)
	var out []string
	for _, i := range node.Interfaces {
		out = append(out, i.Name)
	}
	return out
}

// propertyType returns the D-Bus type of a property, and whether the
// interface has it.
func propertyType(iface, name string) (string, bool) {
	for _, p := range interfaces()[iface].Properties {
		if p.Name == name {
			return p.Type, true
		}
	}
	return "", false
}

// signalSignature returns the signature of a signal's arguments, and
// whether the interface has the signal.
func signalSignature(iface, name string) (string, bool) {
	for _, s := range interfaces()[iface].Signals {
		if s.Name == name {
			var sig strings.Builder
			for _, a := range s.Args {
				sig.WriteString(a.Type)
			}
			return sig.String(), true
		}
	}
	return "", false
}

// checkSignal fails unless args match the signal's arguments as the
// introspection data declares them.
func checkSignal(iface, name string, args []any) error {
	want, ok := signalSignature(iface, name)
	if !ok {
		return fmt.Errorf("signal %s.%s is not declared", iface, name)
	}
	if got := godbus.SignatureOf(args...).String(); got != want {
		return fmt.Errorf("signal %s.%s: arguments %q, declared %q", iface, name, got, want)
	}
	return nil
}

// introspectNode returns the introspection XML of an object with the given
// interfaces (the standard ones first) and child node names.
func introspectNode(ifaces []string, children []string) string {
	node := introspect.Node{}
	for _, name := range ifaces {
		node.Interfaces = append(node.Interfaces, interfaces()[name])
	}
	for _, c := range children {
		node.Children = append(node.Children, introspect.Node{Name: c})
	}
	b, err := xml.MarshalIndent(node, "", "  ")
	if err != nil {
		// The data is static and was marshalled in the tests.
		panic("dbus: introspection data: " + err.Error())
	}
	return strings.TrimSpace(introspect.IntrospectDeclarationString) + "\n" + string(b) + "\n"
}
