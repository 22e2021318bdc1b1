package servant

import "github.com/fae-go/fae/idl/fun/rpc"

// backend names a backend family for its "not configured" answers.
type backend struct {
	name, key  string
	configured bool
}

// err is the error a method of b answers while this build does not serve b.
func (b backend) err() error {
	if !b.configured {
		return &NotConfiguredError{Name: b.name, Key: b.key}
	}
	return &NotBuiltError{Name: b.name, Key: b.key}
}

// unserved runs the call pipeline for a method of a backend this build does not
// serve yet: the Context is checked and counted, then b's error is answered.
func (s *FunServant) unserved(name string, c *rpc.Context, b backend) error {
	_, err := run(s, name, c, true, func() (struct{}, error) { return struct{}{}, b.err() })
	return err
}

func (s *FunServant) backend(name, key string, configured bool) backend {
	return backend{name: name, key: key, configured: configured}
}
