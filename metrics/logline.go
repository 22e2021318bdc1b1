package metrics

import (
	"encoding/json"
	"time"
)

// Line returns the main figures as one line of JSON, newline-terminated, for
// metrics_logfile (the original fae dumped its metrics registry there every
// rpc.stats_output_interval):
//
//	{"time": RFC 3339 with ms, "elapsed_s": seconds since start,
//	 "rpc": the "rpc" object of /engine/stat (sessions, calls, failures, qps…),
//	 "servant": /svt/stat (methods, backends, query cache, cluster, lcache…)}
//
// It reads the live counters, as the HTTP endpoints do.
func (m *Metrics) Line() []byte {
	st := m.engineStat()
	line := map[string]any{
		"time":      time.Now().Format("2006-01-02T15:04:05.000Z07:00"),
		"elapsed_s": st["elapsed_s"],
		"rpc":       st["rpc"],
		"servant":   m.servantStat(),
	}
	b, err := json.Marshal(line)
	if err != nil { // only maps, strings and numbers: cannot happen
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return append(b, '\n')
}
