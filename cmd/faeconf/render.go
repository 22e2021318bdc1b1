package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/fae-go/fae/peer"
)

// nodeList is the content of the files faeconf writes. The JSON form is this
// object; the PHP form returns the same array (the same keys, in the same order).
type nodeList struct {
	// Generated is when faeconf wrote the file, RFC 3339 in UTC.
	Generated string `json:"generated"`
	// Root is the registration root read (peer.root).
	Root string `json:"root"`
	// ZooKeeper are the servers read, host:port each.
	ZooKeeper []string `json:"zookeeper"`
	// Nodes are the live members, sorted by address; never empty.
	Nodes []node `json:"nodes"`
}

// node is one member as clients need it: where to connect and in which
// protocol and transport, and what to show (from its peer.MemberInfo).
type node struct {
	Addr          string `json:"addr"`     // host:port
	Protocol      string `json:"protocol"` // "binary" or "compact"
	Framed        bool   `json:"framed"`   // framed transport, else buffered
	Version       string `json:"version"`
	Pid           int    `json:"pid"`
	Started       string `json:"started"` // RFC 3339
	IdgenWorkerID int    `json:"idgen_worker_id"`
	HTTPAddr      string `json:"http_addr"`      // "" = off
	DashboardAddr string `json:"dashboard_addr"` // "" = off
}

func newNodeList(ms []peer.Member, root string, servers []string, now time.Time) nodeList {
	l := nodeList{Generated: now.UTC().Format(time.RFC3339), Root: root, ZooKeeper: servers, Nodes: make([]node, len(ms))}
	for i, m := range ms {
		l.Nodes[i] = node{Addr: m.Addr, Protocol: m.Info.Protocol, Framed: m.Info.Framed, Version: m.Info.Version,
			Pid: m.Info.Pid, Started: m.Info.Started.UTC().Format(time.RFC3339), IdgenWorkerID: m.Info.IdgenWorkerID,
			HTTPAddr: m.Info.HTTPAddr, DashboardAddr: m.Info.DashboardAddr}
	}
	return l
}

// addrs lists the nodes' addresses, for the log.
func (l nodeList) addrs() []string {
	out := make([]string, len(l.Nodes))
	for i, n := range l.Nodes {
		out[i] = n.Addr
	}
	return out
}

// JSON is the JSON form, indented, with a final newline.
func (l nodeList) JSON() []byte {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil { // only plain fields: cannot happen
		panic("faeconf: encoding the node list: " + err.Error())
	}
	return append(b, '\n')
}

// PHP is the PHP form: a file that returns the array, for
// `$conf = require '/path/to/fae_nodes.php';`. Mind opcache: with
// opcache.validate_timestamps off a rewritten file is never read again;
// FaeClient.php reads the JSON form instead.
func (l nodeList) PHP() []byte {
	var b strings.Builder
	b.WriteString("<?php\n// Written by faeconf from ZooKeeper: the live fae nodes. Do not edit: it is rewritten on every change.\nreturn array(\n")
	fmt.Fprintf(&b, "    'generated' => %s,\n", phpString(l.Generated))
	fmt.Fprintf(&b, "    'root' => %s,\n", phpString(l.Root))
	zk := make([]string, len(l.ZooKeeper))
	for i, s := range l.ZooKeeper {
		zk[i] = phpString(s)
	}
	fmt.Fprintf(&b, "    'zookeeper' => array(%s),\n", strings.Join(zk, ", "))
	b.WriteString("    'nodes' => array(\n")
	for _, n := range l.Nodes {
		fmt.Fprintf(&b, "        array('addr' => %s, 'protocol' => %s, 'framed' => %t, 'version' => %s, 'pid' => %d, "+
			"'started' => %s, 'idgen_worker_id' => %d, 'http_addr' => %s, 'dashboard_addr' => %s),\n",
			phpString(n.Addr), phpString(n.Protocol), n.Framed, phpString(n.Version), n.Pid,
			phpString(n.Started), n.IdgenWorkerID, phpString(n.HTTPAddr), phpString(n.DashboardAddr))
	}
	b.WriteString("    ),\n);\n")
	return []byte(b.String())
}

// phpString is s as a PHP single-quoted string literal: only \ and ' are
// escaped there, every other byte stands for itself.
func phpString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
