// Package dbus is ctr's D-Bus transport: it serves the engine's jobs as
// org.example.Ctr on the system bus, so that busctl and any D-Bus client can
// do what ctrctl does — the same jobs, the same errors, the same events.
//
// The objects and interfaces are described in org.example.Ctr.xml, beside
// this file, which the package embeds and serves in Introspect:
//
//	/org/example/Ctr            org.example.Ctr: Version, Info, ListJobs,
//	                            ListHandlers, RunJob, ListContainers,
//	                            CreateContainer, StartContainer,
//	                            StopContainer, KillContainer,
//	                            UpdateContainer, RemoveContainer,
//	                            ListImages, RemoveImage,
//	                            LoadImage, PullImage, Build, Search, Auth,
//	                            ListNetworks, CreateNetwork, RemoveNetwork;
//	                            the properties Version,
//	                            ApiVersion, StorageDriver, ExecDriver,
//	                            Containers, ContainersRunning, Images,
//	                            SocketActivated; the signals JobNew,
//	                            JobRemoved and Event; and
//	                            org.freedesktop.DBus.ObjectManager
//	/org/example/Ctr/job/ID     org.example.Ctr.Job, one per running job
//	                            (and for a minute after a LoadImage or
//	                            PullImage job ended): Cancel, Wait; Id,
//	                            Name, State,
//	                            Progress, Result, Error
//	/org/example/Ctr/container/ID
//	                            org.example.Ctr.Container, one per
//	                            container: Start, Stop, Kill, Update,
//	                            Remove, Wait;
//	                            Id, Name, Image, State, Pid, ExitCode,
//	                            StartedAt, FinishedAt, IPAddress
//	/org/example/Ctr/network/ID org.example.Ctr.Network, one per network:
//	                            Id, Name, Driver, Subnet, Gateway,
//	                            IPv6Subnet, Internal
//
// Every object also has the standard Peer, Introspectable and Properties
// interfaces.
//
// # Replies
//
// A method's reply is its job's typed reply, encoded as JSON first (so the
// keys are those of the HTTP API) and then as D-Bus values: Version as
// a{ss} strings a person reads in busctl, Info as a{sv} with typed values.
// RunJob is the generic door to every job, for busctl users: it returns the
// job's stdout and stderr as strings, and when a job replied with a value
// and wrote nothing to stdout, stdout holds that value's JSON, one line, so
// `busctl call … RunJob sasa{ss} NAME 0 0` shows every job's result.
//
// Every method runs a job of the engine, the one HTTP runs for the same
// request, so the errors and events are the same on both transports.
// Container objects follow the events log: after each event of a
// container, the container_inspect job reads it again and what changed is
// sent in PropertiesChanged; the objects of the containers that exist are
// made before the name is requested. LoadImage runs the load job in the
// background with the passed file descriptor as its input, and returns the
// job's object once the job is in the engine's table (systemd's pattern:
// JobNew before the reply, JobRemoved with the result); PullImage does the
// same with the pull job, and Build with the build job (its descriptor the
// build context).
//
// # Errors
//
// A failed job is the D-Bus error org.example.Ctr.Error.CLASS, CLASS being
// its class from internal/errdefs (ErrorName); ClassOfError maps a name
// back. Nothing looks at an error's text.
//
// # Security
//
// The bus policy (units/org.example.Ctr.conf) lets root and group ctr call
// methods and receive signals, and everyone else introspect and read
// properties. Inside ctrd, every call that changes state is checked again:
// the caller's uid and groups come from the bus (GetConnectionCredentials),
// and only root and members of Options.Group get through; the others get
// org.example.Ctr.Error.PermissionDenied, whatever the policy says.
//
// File descriptors passed with anything but LoadImage and Build are closed as soon
// as their message is read. godbus (v5.2.4) panics when it reads an array
// of file descriptors, before ctrd sees the message; the bus policy must
// therefore refuse file descriptors from everyone but root and group ctr
// (max_fds="0"), see the README.
//
// # Life cycle
//
// The daemon calls New before it freezes the engine (New observes the
// engine's jobs), Connect once the HTTP API is set up (objects are served
// before the name is requested, so no client calls into nothing), and
// Close on shutdown. Every call runs on its own goroutine (godbus's) with a
// deadline (Options.CallTimeout); signals are sent in order from one queue,
// so that neither the engine nor the events log ever waits for the bus.
package dbus
