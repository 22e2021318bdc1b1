package engine

// Session goroutines are reused: a goroutine that has served a session waits
// for the next one instead of exiting, up to maxIdleWorkers of them at once.
// A new goroutine starts with a small stack (2 KiB), and a session's call
// path (the Thrift processor, the servant, the poller's deadline timers)
// grows it two or three times, each a copy of the stack: 8% of faed's CPU in
// a php-fpm session of one ping (pprof of make bench scenario 2 at c=64,
// runtime.copystack), besides the goroutine's start and exit. A reused
// goroutine keeps its grown stack (the GC halves a stack that uses under a
// quarter of it, so an idle one shrinks back over a few GC cycles).
//
// maxIdleWorkers bounds the goroutines waiting for a session: memory at most
// that many stacks (8-16 KiB each as a session leaves them), about 2 MiB. A
// goroutine that ends a session while as many wait exits.
const maxIdleWorkers = 128

// startSession serves sess on a waiting session goroutine, or on a new one
// when none waits.
func (s *Server) startSession(sess *session) {
	select {
	case s.handoff <- sess:
	default:
		go s.sessionWorker(sess)
	}
}

// sessionWorker serves sess, then the sessions startSession hands it, until
// maxIdleWorkers others wait already or the server shuts down.
func (s *Server) sessionWorker(sess *session) {
	for {
		s.serveSession(sess)
		if s.idleWorkers.Add(1) > maxIdleWorkers {
			s.idleWorkers.Add(-1)
			return
		}
		s.Stats.IdleGoroutines.Add(1)
		select {
		case sess = <-s.handoff:
			s.idleWorkers.Add(-1)
			s.Stats.IdleGoroutines.Add(-1)
		case <-s.done:
			s.idleWorkers.Add(-1)
			s.Stats.IdleGoroutines.Add(-1)
			return
		}
	}
}
