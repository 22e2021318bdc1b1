package peer

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"
)

// The mark of this implementation's registration records. A znode under the
// root whose data does not carry both is not a member: an original fae (it
// registers with empty data) or anything else sharing the root.
const (
	// Impl is the "impl" field of every record this implementation writes.
	Impl = "fae-go"
	// Format is the record's format version. It changes only with an
	// incompatible change of the record; fields are added without a new
	// format (readers ignore unknown fields). A record of another format is
	// reported as foreign: nodes of two formats do not form one ring.
	Format = 1
)

// MaxWorkerID is the largest idgen_worker_id: ids carry it in 5 bits, so at
// most 32 id-issuing nodes (servant/idgen.go).
const MaxWorkerID = 31

// MemberInfo is the JSON data of a node's znode <root>/<host:port>: what
// peers need to know to talk to it and to show it.
type MemberInfo struct {
	// Impl and Format mark the record as this implementation's (see Impl,
	// Format). Registry.Register fills them in.
	Impl   string `json:"impl"`
	Format int    `json:"format"`
	// Version is the faed version string ("dev" in a development build).
	Version string `json:"version"`
	// Pid is the faed process id.
	Pid int `json:"pid"`
	// Started is when the process started (RFC 3339 in the JSON).
	Started time.Time `json:"started"`
	// Protocol is the Thrift protocol the node serves: "binary" or "compact".
	// Peers forwarding to it speak it.
	Protocol string `json:"protocol"`
	// Framed tells whether the node serves the framed transport.
	Framed bool `json:"framed"`
	// HTTPAddr is its JSON/HTTP API address ("" = off).
	HTTPAddr string `json:"http_addr"`
	// DashboardAddr is its dashboard address ("" = off); the dashboard links nodes.
	DashboardAddr string `json:"dashboard_addr"`
	// IdgenWorkerID is its servants.idgen_worker_id, 0..MaxWorkerID. Two live
	// members never hold the same one (see IDConflictError).
	IdgenWorkerID int `json:"idgen_worker_id"`
	// Leaving is set when the node leaves on purpose: peers drop it at once
	// instead of after the removal delay.
	Leaving bool `json:"leaving"`
}

// Member is one node of the cluster: its advertised host:port (the znode's
// name) and its record.
type Member struct {
	Addr string
	Info MemberInfo
}

// Foreign is a child of the root that is not a member: its name and why it
// is ignored. Foreign children are never part of the membership.
type Foreign struct {
	// Addr is the child's name (normally the other node's host:port).
	Addr string
	// Reason says why it is not taken as a member.
	Reason string
}

func (f Foreign) String() string { return f.Addr + ": " + f.Reason }

// validate checks the fields a peer relies on; the error names the field.
func (m *MemberInfo) validate() error {
	switch {
	case m.Protocol != "binary" && m.Protocol != "compact":
		return fmt.Errorf("protocol must be \"binary\" or \"compact\", got %q", m.Protocol)
	case m.IdgenWorkerID < 0 || m.IdgenWorkerID > MaxWorkerID:
		return fmt.Errorf("idgen_worker_id must be 0..%d, got %d", MaxWorkerID, m.IdgenWorkerID)
	}
	return nil
}

// encode marks info as this implementation's record and returns its JSON.
func (m MemberInfo) encode() []byte {
	m.Impl, m.Format = Impl, Format
	b, err := json.Marshal(m)
	if err != nil { // only plain fields: cannot happen
		panic("peer: encoding a MemberInfo: " + err.Error())
	}
	return b
}

// decodeMember reads the record of child name. A child that is not this
// implementation's record gives a non-empty reason and no error.
func decodeMember(name string, data []byte) (m MemberInfo, reason string) {
	if err := validateAddr(name); err != nil {
		return m, "name is not a host:port: " + err.Error()
	}
	if len(data) == 0 {
		return m, "empty data: not this implementation's record (an original fae registers so)"
	}
	var probe struct {
		Impl   *string `json:"impl"`
		Format *int    `json:"format"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return m, fmt.Sprintf("data is not a JSON object (%d bytes): not this implementation's record", len(data))
	}
	switch {
	case probe.Impl == nil || *probe.Impl != Impl:
		impl := "none"
		if probe.Impl != nil {
			impl = strconv.Quote(*probe.Impl)
		}
		return m, fmt.Sprintf("record of another implementation (impl %s, want %q)", impl, Impl)
	case probe.Format == nil || *probe.Format != Format:
		f := "none"
		if probe.Format != nil {
			f = strconv.Itoa(*probe.Format)
		}
		return m, fmt.Sprintf("record format %s, this node reads format %d", f, Format)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, "malformed record: " + err.Error()
	}
	if err := m.validate(); err != nil {
		return m, "malformed record: " + err.Error()
	}
	return m, ""
}

// validateAddr checks that addr is host:port with a host and a port 1..65535.
func validateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("%q has no host", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port must be 1..65535", addr)
	}
	return nil
}

// sortMembers sorts by Addr, the order every node agrees on.
func sortMembers(ms []Member) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Addr < ms[j].Addr })
}
