//go:build faetest

package main

import (
	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/servant"
)

// Built only with -tags faetest, for the process tests: a call whose Context
// reason is "test.panic" panics inside the servant's call pipeline. A panic is a
// fault no real input should cause, so the tests need this to reach the
// recovery path of a running faed.
func init() {
	faultHook = func(o *servant.Options) {
		o.Fault = func(method string, c *rpc.Context) {
			if c != nil && c.Reason == "test.panic" {
				panic("test.panic requested by " + method)
			}
		}
	}
}
