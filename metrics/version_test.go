package metrics_test

import "runtime"

func goVersion() string { return runtime.Version() }
