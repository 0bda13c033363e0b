package native

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCgroupMounts(t *testing.T) {
	hybrid := `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,xattr,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:40 / /tmp/elsewhere rw,relatime - cgroup cgroup rw,pids
51 31 0:41 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory,clone_children
`
	got, err := parseCgroupMounts(strings.NewReader(hybrid))
	if err != nil {
		t.Fatal(err)
	}
	want := []cgroupMount{
		{Dir: "cpu,cpuacct", FSType: "cgroup", Data: "cpu,cpuacct"},
		{Dir: "systemd", FSType: "cgroup", Data: "name=systemd"},
		{Dir: "unified", FSType: "cgroup2"},
		{Dir: "memory", FSType: "cgroup", Data: "memory"}, // the later mount hides the first
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("hybrid:\n got %+v\nwant %+v", got, want)
	}

	unified := "25 23 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
	got, _ = parseCgroupMounts(strings.NewReader(unified))
	if want := []cgroupMount{{FSType: "cgroup2"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("unified: got %+v, want %+v", got, want)
	}
}

func TestPlacedMounts(t *testing.T) {
	list := []cgroupMount{
		{Dir: "cpu,cpuacct", FSType: "cgroup", Data: "cpu,cpuacct"},
		{Dir: "memory", FSType: "cgroup", Data: "memory"},
		{Dir: "blkio", FSType: "cgroup", Data: "blkio"},
		{Dir: "systemd", FSType: "cgroup", Data: "name=systemd"},
		{Dir: "unified", FSType: "cgroup2"},
		{Dir: "cpu", Link: "cpu,cpuacct"},
		{Dir: "io", Link: "blkio"},
	}
	parent := "5:blkio:/system.slice/ctr.service\n4:memory:/system.slice/ctr.service\n3:cpu,cpuacct:/system.slice/ctr.service\n1:name=systemd:/system.slice/ctr.service\n0::/system.slice/ctr.service\n"
	self := "5:blkio:/system.slice/ctr.service\n4:memory:/ctr/abc\n3:cpu,cpuacct:/ctr/abc\n1:name=systemd:/system.slice/ctr.service\n0::/ctr/abc\n"
	got := placedMounts(list, parent, self)
	want := []cgroupMount{list[0], list[1], list[4], list[5]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("placed:\n got %+v\nwant %+v", got, want)
	}
	if got := placedMounts(list, parent, parent); len(got) != 0 {
		t.Errorf("never moved: %+v, want nothing mounted", got)
	}
}
