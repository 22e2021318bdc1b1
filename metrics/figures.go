package metrics

import "github.com/fae-go/fae/servant"

// clusterStat is /svt/stat's "cluster": the routing counters and the calls
// forwarded to each peer ("by_peer": servant.ClusterStats.Peers, at most
// servant.MaxForwardPeers rows plus "(other)").
func clusterStat(s *servant.FunServant) map[string]any {
	c := &s.Cluster
	return map[string]any{"forwarded": c.Forwarded.Load(), "forward_failed": c.ForwardFailed.Load(),
		"misrouted": c.Misrouted.Load(), "local_fallback": c.LocalFallback.Load(), "no_owner": c.NoOwner.Load(),
		"by_peer": c.Peers()}
}

// lcacheStat is /svt/stat's "lcache": items and bytes held, lc_get hits and
// misses since start; nil without servants.lcache.
func lcacheStat(s *servant.FunServant) map[string]int64 {
	items, bytes, ok := s.LcacheSize()
	if !ok {
		return nil
	}
	return map[string]int64{"items": int64(items), "bytes": bytes,
		"hits": s.Lcache.Hits.Load(), "misses": s.Lcache.Misses.Load()}
}
