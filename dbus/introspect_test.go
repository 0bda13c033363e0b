package dbus

import (
	"encoding/xml"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
)

// adapterTypes are the Go types that serve each interface with methods.
var adapterTypes = map[string]reflect.Type{
	ifaceManager:        reflect.TypeOf(manager{}),
	ifaceJob:            reflect.TypeOf(jobAdapter{}),
	ifaceContainer:      reflect.TypeOf(containerAdapter{}),
	ifaceNetwork:        reflect.TypeOf(networkAdapter{}),
	ifaceIntrospectable: reflect.TypeOf(introspectable{}),
	ifaceProperties:     reflect.TypeOf(properties{}),
	ifaceObjectManager:  reflect.TypeOf(objectManager{}),
}

// goSignature returns the D-Bus signatures of a method's arguments and
// results as godbus sends them: Sender and Message arguments and the last
// (*godbus.Error) result do not count.
func goSignature(ft reflect.Type) (in, out string) {
	for i := 1; i < ft.NumIn(); i++ { // 0 is the receiver
		t := ft.In(i)
		if t == senderType || t == messageType {
			continue
		}
		in += godbus.SignatureOfType(t).String()
	}
	for i := 0; i < ft.NumOut()-1; i++ {
		out += godbus.SignatureOfType(ft.Out(i)).String()
	}
	return in, out
}

func xmlSignature(m introspect.Method) (in, out string) {
	for _, a := range m.Args {
		if a.Direction == "out" {
			out += a.Type
		} else {
			in += a.Type
		}
	}
	return in, out
}

// TestAdaptersMatchIntrospection checks that the Go adapters export exactly
// the methods the introspection data declares, with the same signatures;
// for ctr's interfaces the data is org.example.Ctr.xml.
func TestAdaptersMatchIntrospection(t *testing.T) {
	for _, name := range ctrInterfaces() {
		if _, ok := adapterTypes[name]; !ok {
			t.Errorf("interface %s of org.example.Ctr.xml has no adapter in this test", name)
		}
	}
	for name, typ := range adapterTypes {
		data, ok := interfaces()[name]
		if !ok {
			t.Errorf("no introspection data for %s", name)
			continue
		}
		declared := map[string]introspect.Method{}
		for _, m := range data.Methods {
			declared[m.Name] = m
		}
		exported := methodsOf(typ)
		var got, want []string
		for n := range exported {
			got = append(got, n)
		}
		for n := range declared {
			want = append(want, n)
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: the adapter exports %v, the introspection declares %v", name, got, want)
			continue
		}
		for n, idx := range exported {
			gin, gout := goSignature(typ.Method(idx).Type)
			xin, xout := xmlSignature(declared[n])
			if gin != xin || gout != xout {
				t.Errorf("%s.%s: Go (%s) → (%s), declared (%s) → (%s)", name, n, gin, gout, xin, xout)
			}
			for _, a := range declared[n].Args {
				if a.Name == "" && name != ifaceIntrospectable {
					t.Errorf("%s.%s: an argument without a name", name, n)
				}
			}
		}
	}
}

// TestInterfacesXML checks the XML file: every method, signal and
// property is documented with argument names and valid types.
func TestInterfacesXML(t *testing.T) {
	var node introspect.Node
	if err := xml.Unmarshal(interfacesXML, &node); err != nil {
		t.Fatal(err)
	}
	if len(node.Interfaces) != 4 {
		t.Errorf("%d interfaces, want org.example.Ctr, org.example.Ctr.Job, org.example.Ctr.Container and org.example.Ctr.Network", len(node.Interfaces))
	}
	valid := func(where, sig string) {
		if _, err := godbus.ParseSignature(sig); err != nil || sig == "" {
			t.Errorf("%s: type %q: %v", where, sig, err)
		}
	}
	for _, i := range node.Interfaces {
		for _, m := range i.Methods {
			for _, a := range m.Args {
				valid(i.Name+"."+m.Name+"."+a.Name, a.Type)
				if a.Name == "" || (a.Direction != "in" && a.Direction != "out") {
					t.Errorf("%s.%s: argument %+v needs a name and a direction", i.Name, m.Name, a)
				}
			}
		}
		for _, s := range i.Signals {
			for _, a := range s.Args {
				valid(i.Name+"."+s.Name+"."+a.Name, a.Type)
				if a.Name == "" {
					t.Errorf("%s.%s: an argument without a name", i.Name, s.Name)
				}
			}
		}
		for _, p := range i.Properties {
			valid(i.Name+"."+p.Name, p.Type)
			if p.Access != "read" {
				t.Errorf("%s.%s: access %q; ctrd's properties are read-only", i.Name, p.Name, p.Access)
			}
		}
	}
	// Every node the server serves marshals, with the declaration.
	x := introspectNode([]string{ifacePeer, ifaceIntrospectable, ifaceProperties, ifaceObjectManager, ifaceManager}, []string{"job"})
	if !strings.HasPrefix(x, "<!DOCTYPE node") {
		t.Errorf("introspection XML starts %.40q", x)
	}
	var back introspect.Node
	if err := xml.Unmarshal([]byte(x), &back); err != nil || len(back.Interfaces) != 5 || len(back.Children) != 1 {
		t.Errorf("introspection XML does not read back: %v %+v", err, back)
	}
}

// TestManagerPropertiesMatch checks that the manager's properties, as the
// server computes them, are exactly the declared ones with their types.
func TestManagerPropertiesMatch(t *testing.T) {
	te := newTestEngine(t)
	srv, err := New(te.eng, te.events, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	te.eng.Freeze()
	defer srv.Close()
	ctx, cancel := srv.callContext()
	defer cancel()
	props, err := srv.managerProps(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	declared := interfaces()[ifaceManager].Properties
	if len(props) != len(declared) {
		t.Errorf("%d properties, %d declared", len(props), len(declared))
	}
	for _, p := range declared {
		v, ok := props[p.Name]
		if !ok || v.Signature().String() != p.Type {
			t.Errorf("property %s: %v, declared %s", p.Name, v, p.Type)
		}
	}
	j := jobAdapter{s: srv, id: 1, name: "x"}
	jp, _ := j.props(ctx, "")
	for _, p := range interfaces()[ifaceJob].Properties {
		if v, ok := jp[p.Name]; !ok || v.Signature().String() != p.Type {
			t.Errorf("job property %s: %v, declared %s", p.Name, v, p.Type)
		}
	}
}

func TestCheckSignal(t *testing.T) {
	if err := checkSignal(ifaceManager, "JobNew", []any{uint32(1), godbus.ObjectPath("/a"), "x"}); err != nil {
		t.Error(err)
	}
	if err := checkSignal(ifaceManager, "JobNew", []any{uint64(1), godbus.ObjectPath("/a"), "x"}); err == nil {
		t.Error("JobNew with a uint64 id passed")
	}
	if err := checkSignal(ifaceManager, "Nothing", nil); err == nil {
		t.Error("an undeclared signal passed")
	}
	if err := checkSignal(ifaceProperties, "PropertiesChanged", []any{"i", map[string]godbus.Variant{}, []string{}}); err != nil {
		t.Error(err)
	}
}
