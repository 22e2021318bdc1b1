package peer

import (
	"time"

	"github.com/go-zookeeper/zk"
)

// ZKEvent is a ZooKeeper event as the registry's client saw it (/engine/peers).
type ZKEvent struct {
	Type  string    `json:"type"`            // go-zookeeper's name: "EventSession", "EventNodeChildrenChanged"…
	State string    `json:"state"`           // the session state then: "StateHasSession", "StateDisconnected"…
	Path  string    `json:"path,omitempty"`  // the watched node, for a watch event
	Err   string    `json:"error,omitempty"` // the event's error, if any
	Time  time.Time `json:"time"`            // when the registry received it
}

// Epoch counts the membership changes the registry applied (published to
// Members and the subscribers): 0 while the membership is unknown, 1 once it
// is first read, then one more per change, so two equal epochs of one
// process saw the same membership.
func (r *Registry) Epoch() int64 { return r.epoch.Load() }

// LastEvent is the last ZooKeeper event of the current client (a session
// state change or a watch firing); ok is false before the first.
func (r *Registry) LastEvent() (ev ZKEvent, ok bool) {
	if p := r.lastEvent.Load(); p != nil {
		return *p, true
	}
	return ZKEvent{}, false
}

// noteEvent records ev as the last event; it runs in go-zookeeper's event
// callback, so it only allocates and stores.
func (r *Registry) noteEvent(ev zk.Event) {
	e := &ZKEvent{Type: ev.Type.String(), State: ev.State.String(), Path: ev.Path, Time: time.Now()}
	if ev.Err != nil {
		e.Err = ev.Err.Error()
	}
	r.lastEvent.Store(e)
}
