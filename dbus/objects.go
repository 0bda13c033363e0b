package dbus

import (
	"context"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	godbus "github.com/godbus/dbus/v5"
)

// ctrd answers method calls through its own godbus Handler rather than
// godbus's Export, because its objects come and go with the engine's live
// table: a job's object is looked up when a call arrives, so it exists
// exactly while the job runs, and a path nobody serves is a NoSuchObject
// error. Every object has the standard Introspectable, Peer and Properties
// interfaces; the manager has ObjectManager too.
//
// godbus runs every method call on a goroutine of its own, so a slow call
// never holds up the others; each call also gets a deadline
// (Options.CallTimeout).

// Paths of ctrd's objects.
const (
	// ManagerPath is the manager object's path.
	ManagerPath godbus.ObjectPath = "/org/example/Ctr"
	// JobPathPrefix is followed by a job's id in a job object's path.
	JobPathPrefix = "/org/example/Ctr/job/"
)

// iface is one of ctr's interfaces on an object: the adapter whose exported
// methods (those returning *godbus.Error last) are the interface's methods,
// and a function that returns its properties.
type iface struct {
	name    string
	adapter any
	// props returns the interface's properties: every one when want is
	// "", else at least want. It may be nil.
	props func(ctx context.Context, want string) (map[string]godbus.Variant, error)
}

// object is what ctrd serves at one path.
type object struct {
	path   godbus.ObjectPath
	ifaces []iface
}

func (o *object) iface(name string) (iface, bool) {
	for _, i := range o.ifaces {
		if i.name == name {
			return i, true
		}
	}
	return iface{}, false
}

// tree holds the managed objects: the ones ObjectManager reports and
// announces with InterfacesAdded and InterfacesRemoved (container objects).
// The manager and the job objects are not in it.
type tree struct {
	mu      sync.Mutex
	objects map[godbus.ObjectPath]*object
}

func (t *tree) get(path godbus.ObjectPath) (*object, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.objects[path]
	return o, ok
}

func (t *tree) all() []*object {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*object, 0, len(t.objects))
	for _, o := range t.objects {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// addObject serves o and announces it with InterfacesAdded. An object
// already at that path is replaced.
func (s *Server) addObject(ctx context.Context, o *object) {
	s.putObject(o)
	s.emit(ManagerPath, ifaceObjectManager, "InterfacesAdded", o.path, s.interfacesAndProperties(ctx, o))
}

// putObject serves o without announcing it (at start-up, before ctrd
// owns its name). An object already at that path is replaced.
func (s *Server) putObject(o *object) {
	s.tree.mu.Lock()
	defer s.tree.mu.Unlock()
	if s.tree.objects == nil {
		s.tree.objects = make(map[godbus.ObjectPath]*object)
	}
	s.tree.objects[o.path] = o
}

// removeObject stops serving the object at path and announces it with
// InterfacesRemoved.
func (s *Server) removeObject(path godbus.ObjectPath) {
	s.tree.mu.Lock()
	o, ok := s.tree.objects[path]
	delete(s.tree.objects, path)
	s.tree.mu.Unlock()
	if !ok {
		return
	}
	names := make([]string, len(o.ifaces))
	for i, f := range o.ifaces {
		names[i] = f.name
	}
	s.emit(ManagerPath, ifaceObjectManager, "InterfacesRemoved", path, names)
}

// propertiesChanged sends PropertiesChanged for an object's interface.
func (s *Server) propertiesChanged(path godbus.ObjectPath, iface string, changed map[string]godbus.Variant) {
	s.emit(path, ifaceProperties, "PropertiesChanged", iface, changed, []string{})
}

// interfacesAndProperties returns o's interfaces and their properties, as
// GetManagedObjects and InterfacesAdded carry them. An interface whose
// properties cannot be read is listed without them.
func (s *Server) interfacesAndProperties(ctx context.Context, o *object) map[string]map[string]godbus.Variant {
	out := make(map[string]map[string]godbus.Variant, len(o.ifaces))
	for _, f := range o.ifaces {
		props, err := s.properties(ctx, f, "")
		if err != nil {
			s.log.Warn("cannot read an object's properties", "path", string(o.path), "interface", f.name, "error", err)
			props = map[string]godbus.Variant{}
		}
		out[f.name] = props
	}
	return out
}

// lookup returns the object at path: the manager, a running job, a managed
// object, or a node on the way to one (which has only the standard
// interfaces). ok is false when nothing is there.
func (s *Server) lookup(path godbus.ObjectPath) (*object, bool) {
	switch {
	case path == ManagerPath:
		return s.managerObject(), true
	case strings.HasPrefix(string(path), JobPathPrefix):
		if o, ok := s.jobObject(path); ok {
			return o, true
		}
	}
	if o, ok := s.tree.get(path); ok {
		return o, true
	}
	if slices.Contains(s.paths(), string(path)) || len(s.children(path)) > 0 {
		return &object{path: path}, true
	}
	return nil, false
}

// paths returns the paths of ctrd's objects and of the folders of job and
// container objects, which are there even when they are empty.
func (s *Server) paths() []string {
	paths := []string{string(ManagerPath), strings.TrimSuffix(JobPathPrefix, "/"), strings.TrimSuffix(ContainerPathPrefix, "/")}
	for _, j := range s.runningJobs() {
		paths = append(paths, string(jobPath(j.ID)))
	}
	for _, id := range s.endedJobs() {
		paths = append(paths, string(jobPath(id)))
	}
	for _, o := range s.tree.all() {
		paths = append(paths, string(o.path))
	}
	return paths
}

// children returns the names of the nodes right below path.
func (s *Server) children(path godbus.ObjectPath) []string {
	prefix := string(path)
	if prefix != "/" {
		prefix += "/"
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range s.paths() {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || rest == "" {
			continue
		}
		name, _, _ := strings.Cut(rest, "/")
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// handler is ctrd's godbus Handler.
type handler struct{ s *Server }

// LookupObject implements godbus.Handler.
func (h handler) LookupObject(path godbus.ObjectPath) (godbus.ServerObject, bool) {
	o, ok := h.s.lookup(path)
	if !ok {
		return nil, false
	}
	return serverObject{s: h.s, o: o}, true
}

// serverObject routes calls on one object to its adapters.
type serverObject struct {
	s *Server
	o *object
}

// standardIfaces returns the standard interfaces an object has, in the
// order introspection lists them.
func (o *object) standardIfaces() []string {
	names := []string{ifacePeer, ifaceIntrospectable, ifaceProperties}
	if o.path == ManagerPath {
		names = append(names, ifaceObjectManager)
	}
	return names
}

func (so serverObject) adapter(name string) (any, bool) {
	switch name {
	case ifaceIntrospectable:
		return introspectable{so.s, so.o}, true
	case ifaceProperties:
		return properties{so.s, so.o}, true
	case ifaceObjectManager:
		if so.o.path == ManagerPath {
			return objectManager{so.s}, true
		}
		return nil, false
	}
	if f, ok := so.o.iface(name); ok && f.adapter != nil {
		return f.adapter, true
	}
	return nil, false
}

// LookupInterface implements godbus.ServerObject. A call without an
// interface goes to the first of the object's interfaces that has the
// method, as the D-Bus specification allows.
func (so serverObject) LookupInterface(name string) (godbus.Interface, bool) {
	if name == "" {
		var all []any
		for _, n := range append(so.o.standardIfaces(), ifaceNames(so.o)...) {
			if a, ok := so.adapter(n); ok {
				all = append(all, a)
			}
		}
		return adapters(all), true
	}
	a, ok := so.adapter(name)
	if !ok {
		return nil, false
	}
	return adapters{a}, true
}

func ifaceNames(o *object) []string {
	out := make([]string, len(o.ifaces))
	for i, f := range o.ifaces {
		out[i] = f.name
	}
	return out
}

// adapters is an interface served by the first adapter that has the
// method.
type adapters []any

// LookupMethod implements godbus.Interface.
func (as adapters) LookupMethod(name string) (godbus.Method, bool) {
	for _, a := range as {
		v := reflect.ValueOf(a)
		if i, ok := methodsOf(v.Type())[name]; ok {
			return method{v.Method(i)}, true
		}
	}
	return nil, false
}

var (
	errorType   = reflect.TypeOf((*godbus.Error)(nil))
	senderType  = reflect.TypeOf(godbus.Sender(""))
	messageType = reflect.TypeOf(godbus.Message{})

	methodTables sync.Map // reflect.Type → map[string]int
)

// methodsOf returns the D-Bus methods of an adapter type, by name, with
// their method index: the exported methods whose last result is a
// *godbus.Error, as godbus's Export takes them.
func methodsOf(t reflect.Type) map[string]int {
	if m, ok := methodTables.Load(t); ok {
		return m.(map[string]int)
	}
	m := make(map[string]int)
	for i := 0; i < t.NumMethod(); i++ {
		mt := t.Method(i)
		ft := mt.Type
		if mt.IsExported() && ft.NumOut() > 0 && ft.Out(ft.NumOut()-1) == errorType {
			m[mt.Name] = i
		}
	}
	methodTables.Store(t, m)
	return m
}

// method is an adapter's method bound to its receiver, as godbus calls it:
// arguments of type godbus.Sender get the caller's name and are not part
// of the D-Bus signature.
type method struct{ fn reflect.Value }

// Call implements godbus.Method.
func (m method) Call(args ...any) ([]any, error) {
	in := make([]reflect.Value, len(args))
	for i, a := range args {
		in[i] = reflect.ValueOf(a).Elem()
	}
	out := m.fn.Call(in)
	last := out[len(out)-1]
	if !last.IsNil() {
		return nil, last.Interface().(*godbus.Error)
	}
	ret := make([]any, len(out)-1)
	for i := range ret {
		ret[i] = out[i].Interface()
	}
	return ret, nil
}

// NumArguments implements godbus.Method.
func (m method) NumArguments() int { return m.fn.Type().NumIn() }

// NumReturns implements godbus.Method.
func (m method) NumReturns() int { return m.fn.Type().NumOut() - 1 }

// ArgumentValue implements godbus.Method.
func (m method) ArgumentValue(i int) any { return reflect.Zero(m.fn.Type().In(i)).Interface() }

// ReturnValue implements godbus.Method.
func (m method) ReturnValue(i int) any { return reflect.Zero(m.fn.Type().Out(i)).Interface() }

// introspectable is org.freedesktop.DBus.Introspectable on an object.
type introspectable struct {
	s *Server
	o *object
}

// Introspect returns the object's introspection XML.
func (i introspectable) Introspect() (string, *godbus.Error) {
	names := ifaceNames(i.o)
	if len(names) > 0 || i.o.path == ManagerPath {
		names = append(i.o.standardIfaces(), names...)
	} else {
		// A node on the way to objects: nothing to call there.
		names = []string{ifacePeer, ifaceIntrospectable}
	}
	return introspectNode(names, i.s.children(i.o.path)), nil
}

// properties is org.freedesktop.DBus.Properties on an object. Everyone may
// read properties (the bus policy allows Get and GetAll to all); none can
// be set.
type properties struct {
	s *Server
	o *object
}

// Get returns one property.
func (p properties) Get(sender godbus.Sender, ifaceName, name string) (godbus.Variant, *godbus.Error) {
	f, ok := p.o.iface(ifaceName)
	if !ok {
		return godbus.Variant{}, errUnknownInterface(ifaceName)
	}
	if _, ok := propertyType(ifaceName, name); !ok {
		return godbus.Variant{}, errUnknownProperty(ifaceName, name)
	}
	ctx, cancel := p.s.callContext()
	defer cancel()
	props, err := p.s.properties(p.s.withCaller(ctx, sender), f, name)
	if err != nil {
		return godbus.Variant{}, busError(err)
	}
	v, ok := props[name]
	if !ok {
		return godbus.Variant{}, errUnknownProperty(ifaceName, name)
	}
	return v, nil
}

// GetAll returns every property of an interface; the standard interfaces
// have none.
func (p properties) GetAll(sender godbus.Sender, ifaceName string) (map[string]godbus.Variant, *godbus.Error) {
	f, ok := p.o.iface(ifaceName)
	if !ok {
		if slices.Contains(p.o.standardIfaces(), ifaceName) {
			return map[string]godbus.Variant{}, nil
		}
		return nil, errUnknownInterface(ifaceName)
	}
	ctx, cancel := p.s.callContext()
	defer cancel()
	props, err := p.s.properties(p.s.withCaller(ctx, sender), f, "")
	if err != nil {
		return nil, busError(err)
	}
	return props, nil
}

// Set fails: ctrd's properties are read-only.
func (p properties) Set(ifaceName, name string, _ godbus.Variant) *godbus.Error {
	if _, ok := p.o.iface(ifaceName); !ok {
		return errUnknownInterface(ifaceName)
	}
	if _, ok := propertyType(ifaceName, name); !ok {
		return errUnknownProperty(ifaceName, name)
	}
	return errReadOnly(name)
}

// properties reads an interface's properties and keeps those whose type is
// the declared one; a mismatch is a bug, logged.
func (s *Server) properties(ctx context.Context, f iface, want string) (map[string]godbus.Variant, error) {
	if f.props == nil {
		return map[string]godbus.Variant{}, nil
	}
	props, err := f.props(ctx, want)
	if err != nil {
		return nil, err
	}
	for name, v := range props {
		typ, ok := propertyType(f.name, name)
		if !ok || v.Signature().String() != typ {
			s.log.Error("dropped a property that does not match its declaration", "interface", f.name, "property", name, "type", v.Signature().String(), "declared", typ)
			delete(props, name)
		}
	}
	return props, nil
}

// objectManager is org.freedesktop.DBus.ObjectManager on the manager.
type objectManager struct{ s *Server }

// GetManagedObjects returns every managed object with its interfaces and
// their properties.
func (m objectManager) GetManagedObjects(sender godbus.Sender) (map[godbus.ObjectPath]map[string]map[string]godbus.Variant, *godbus.Error) {
	ctx, cancel := m.s.callContext()
	defer cancel()
	ctx = m.s.withCaller(ctx, sender)
	out := make(map[godbus.ObjectPath]map[string]map[string]godbus.Variant)
	for _, o := range m.s.tree.all() {
		out[o.path] = m.s.interfacesAndProperties(ctx, o)
	}
	return out, nil
}
