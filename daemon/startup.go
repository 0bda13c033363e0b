package daemon

import (
	"context"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// openStores opens, at the same time, what needs nothing but the state
// folder: the storage driver and the image store, the network service
// (the default bridge and the firewall), and the daemon id and the volumes.
// Each repairs its own records and files, none reads another's, and most
// of their time is spent waiting (fsyncs of a fresh database, the storage
// driver's probe mount, netlink and nftables): side by side they take as
// long as the slowest instead of the sum. Their shutdown hooks and jobs
// are then installed one by one in the seed's order (images, networks,
// volumes), so that the job table and the shutdown order do not depend on
// which finished first. On error whatever opened gets its hook, for the
// caller's shutdown to close.
func (d *Daemon) openStores(ctx context.Context) error {
	_ = d.notifier.Status("starting: images, networks, volumes")
	// The two slowest in goroutines of their own; the id and the volumes,
	// quicker, on this one meanwhile: every goroutine costs resident
	// pages of the binary (see onGrownStack).
	var g errgroup.Group
	g.Go(func() error { return onGrownStack(func() error { return d.openImages(ctx) }) })
	g.Go(func() error { return onGrownStack(func() error { return d.openNetworks(ctx) }) })
	id, err := readOrCreateID(filepath.Join(d.cfg.Root, "engine-id"))
	d.state.id = id
	if err == nil {
		err = d.openVolumes(ctx)
	}
	if gerr := g.Wait(); err == nil {
		err = gerr
	}
	if err != nil {
		d.hookOpened()
		return err
	}
	if err := d.installImages(); err != nil {
		return err
	}
	if err := d.installNetworks(); err != nil {
		return err
	}
	return d.installVolumes()
}

// hookOpened registers the shutdown hooks of the stores that opened, when
// another failed: a failed start closes them.
func (d *Daemon) hookOpened() {
	if d.images != nil {
		store := d.images
		d.eng.OnShutdown("images", func(context.Context) error { return store.Close() })
	}
	if d.networks != nil {
		d.eng.OnShutdown("networks", d.networks.Close)
	}
	if d.volumes != nil {
		d.eng.OnShutdown("volumes", d.volumes.Close)
	}
}

// onGrownStack calls fn once the goroutine's stack has room for it.
//
// A goroutine starts with a small stack, and each time a deep call
// outgrows it the runtime copies it, reading the stack maps of every frame
// on it from the binary's pclntab: a goroutine opening a store grows its
// stack several times with dozens of frames, and the pages of pclntab
// those reads fault in stay resident for as long as ctrd runs. Growing
// the stack first, with one frame on it, reads next to nothing (measured
// with three such goroutines: 1.5 MiB more resident without it, 0.8 MiB
// with it; the rest is the goroutines' own start-up).
func onGrownStack(fn func() error) error {
	growStack()
	return fn()
}

// growStack needs a frame of 32 KiB, so that the runtime grows the
// goroutine's stack to 64 KiB while it is the only frame above the
// goroutine's own. The array is written through an index the compiler
// cannot know, so that it keeps the frame.
//
//go:noinline
func growStack() byte {
	var pad [32 << 10]byte
	i := int(stackIndex.Load()) % len(pad)
	pad[i] = 1
	return pad[(i+1)%len(pad)]
}

// stackIndex is growStack's index: zero, but not a constant.
var stackIndex atomic.Int32
