package network

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the network database.
var (
	networksBucket  = []byte("networks")  // network id → netRecord
	sandboxesBucket = []byte("sandboxes") // container id → sandboxRecord (with its endpoints)
)

// Drivers of the networks.
const (
	DriverBridge = "bridge"
	DriverHost   = "host"
	DriverNull   = "null"
)

// netRecord is a network as the store keeps it.
type netRecord struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Driver  string    `json:"driver"`
	Created time.Time `json:"created"`
	// Subnet, Gateway and IPRange are CIDRs ("" for host and null).
	Subnet  string `json:"subnet,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	IPRange string `json:"ip_range,omitempty"`
	// Subnet6 and Gateway6 are the IPv6 subnet and gateway of a network
	// with IPv6 ("" without).
	Subnet6  string `json:"subnet6,omitempty"`
	Gateway6 string `json:"gateway6,omitempty"`
	// Bridge is the bridge's interface; Adopted says ctr did not make it
	// (-b NAME) and never deletes it.
	Bridge  string `json:"bridge,omitempty"`
	Adopted bool   `json:"adopted,omitempty"`
	// Default marks the default bridge network ("bridge").
	Default    bool              `json:"default,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
	Attachable bool              `json:"attachable,omitempty"`
	Masquerade bool              `json:"masquerade,omitempty"`
	ICC        bool              `json:"icc,omitempty"`
	MTU        int               `json:"mtu,omitempty"`
	Options    map[string]string `json:"options,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	IPAMDriver string            `json:"ipam_driver,omitempty"`
	IPAMOpts   map[string]string `json:"ipam_options,omitempty"`
	// Predefined networks (bridge, host, none) cannot be removed.
	Predefined bool `json:"predefined,omitempty"`
}

func (n *netRecord) subnet() *net.IPNet {
	if n.Subnet == "" {
		return nil
	}
	_, s, err := net.ParseCIDR(n.Subnet)
	if err != nil {
		return nil
	}
	return s
}

func (n *netRecord) gateway() net.IP { return net.ParseIP(n.Gateway).To4() }

func (n *netRecord) subnet6() *net.IPNet {
	if n.Subnet6 == "" {
		return nil
	}
	_, s, err := net.ParseCIDR(n.Subnet6)
	if err != nil {
		return nil
	}
	return s
}

func (n *netRecord) gateway6() net.IP { return net.ParseIP(n.Gateway6) }

// ipRange is where addresses are handed out: IPRange, else the subnet.
func (n *netRecord) ipRange() *net.IPNet {
	if n.IPRange != "" {
		if _, r, err := net.ParseCIDR(n.IPRange); err == nil {
			return r
		}
	}
	return n.subnet()
}

// userDefined reports whether containers on the network resolve each
// other by name (every bridge network but the default one).
func (n *netRecord) userDefined() bool { return n.Driver == DriverBridge && !n.Default }

// PortMapping is one published port of a container.
type PortMapping struct {
	Proto         string `json:"proto"`
	HostIP        string `json:"host_ip,omitempty"`
	HostPort      uint16 `json:"host_port"`
	ContainerPort uint16 `json:"container_port"`
}

// endpointRecord is a container's interface on a network: its lease.
type endpointRecord struct {
	ID        string   `json:"id"`
	NetworkID string   `json:"network_id"`
	IfName    string   `json:"ifname"`
	HostVeth  string   `json:"host_veth"`
	IP        string   `json:"ip"`
	IP6       string   `json:"ip6,omitempty"`
	MAC       string   `json:"mac"`
	Aliases   []string `json:"aliases,omitempty"`
	DNSNames  []string `json:"dns_names,omitempty"`
	Static    bool     `json:"static,omitempty"`
}

// sandboxRecord is a container's network stack: its pinned namespace,
// endpoints and published ports. It is written before any of them is
// made, so that a crash leaves a record of what may exist.
type sandboxRecord struct {
	ContainerID string `json:"container_id"`
	// AttachID tells one attachment from the next of the same container.
	AttachID  string           `json:"attach_id"`
	Name      string           `json:"name"`
	Hostname  string           `json:"hostname,omitempty"`
	NetNS     string           `json:"netns"`
	Endpoints []endpointRecord `json:"endpoints"`
	Ports     []PortMapping    `json:"ports,omitempty"`
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// putJSONIfChanged is putJSON that leaves a record already as v alone.
func putJSONIfChanged(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if bytes.Equal(b.Get([]byte(key)), data) {
		return nil
	}
	return b.Put([]byte(key), data)
}

func loadAll[T any](tx *bolt.Tx, bucket []byte) ([]T, error) {
	var out []T
	err := tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		var r T
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("record %s in %s: %w", k, bucket, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}
