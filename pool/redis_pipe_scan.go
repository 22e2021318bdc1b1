package pool

import "math"

// rdReplyScan bounds the bytes of each reply on a pipelined connection, where
// the replies of many commands follow each other in one stream: it follows the
// RESP2 framing as rdNetConn.scan does (a reply over limit fails, a bulk
// string or array announcing more fails as soon as its header arrives, before
// redigo allocates for it), and also finds where each top-level reply ends,
// to count the next one from zero, and counts the replies it has seen end
// (a pipelined connection, idle, has had exactly as many as it took: see
// rdPipeConn.idleCheck). Only the goroutine reading the replies uses it.
type rdReplyScan struct {
	limit    int64 // max_reply_bytes; > 0 (rdNoReplyLimit for none)
	replies  int64 // top-level replies ended in the bytes scanned
	read     int64 // bytes of the current reply before the current buffer
	skip     int64 // bytes still to come of a bulk string's body and its CRLF
	lineHead bool  // the next byte starts a RESP line
	lineType byte
	num      int64
	neg      bool
	// open holds the elements still expected by each array being read,
	// innermost last; its length is at most limit/4 (each level takes 4
	// bytes, "*1\r\n", of a reply that fails past limit).
	open []int64
	// failAt is, once scan has failed, where in its b the reply that failed
	// starts (0: before b): the bytes before it are whole replies, the
	// replies of the calls ahead, and stand.
	failAt int
}

// scan follows b, the next bytes of the stream. On error (a reply over the
// limit) failAt is set.
func (c *rdReplyScan) scan(b []byte) (err error) {
	start := 0 // where the current reply starts in b (0 if it started before)
	defer func() {
		if err != nil {
			c.failAt = start
		}
	}()
	for i := 0; i < len(b); {
		if c.skip > 0 {
			k := int(min(c.skip, int64(len(b)-i)))
			c.skip -= int64(k)
			i += k
			if c.skip == 0 && c.complete() {
				if err := c.ended(c.read + int64(i-start)); err != nil {
					return err
				}
				c.read, start = 0, i
			}
			continue
		}
		ch := b[i]
		i++
		switch {
		case c.lineHead:
			c.lineType, c.num, c.neg, c.lineHead = ch, 0, false, false
		case ch == '\n':
			c.lineHead = true
			ended, err := c.header(c.read + int64(i-start))
			if err != nil {
				return err
			}
			if ended {
				if err := c.ended(c.read + int64(i-start)); err != nil {
					return err
				}
				c.read, start = 0, i
			}
		case ch >= '0' && ch <= '9':
			if c.num <= c.limit { // past limit the number is refused anyway; limit ≤ rdNoReplyLimit keeps num*10+9 an int64
				c.num = c.num*10 + int64(ch-'0')
			}
		case ch == '-':
			c.neg = true
		}
	}
	c.read += int64(len(b) - start)
	if c.read > c.limit {
		return &rdTooLargeError{reached: c.read, limit: c.limit}
	}
	return nil
}

// ended counts a reply that has just ended and checks its size.
func (c *rdReplyScan) ended(size int64) error {
	c.replies++
	if size > c.limit {
		return &rdTooLargeError{reached: size, limit: c.limit}
	}
	return nil
}

// header acts on a line that has just ended at offset end of the reply, and
// reports whether the reply ended with it.
func (c *rdReplyScan) header(end int64) (bool, error) {
	switch {
	case c.neg || c.lineType != '$' && c.lineType != '*' || c.lineType == '*' && c.num == 0:
		return c.complete(), nil // nil, empty array, status, error, integer
	case c.lineType == '$':
		c.skip = c.num + 2
		if end+c.skip > c.limit {
			return false, &rdTooLargeError{reached: end + c.skip, limit: c.limit}
		}
		return false, nil
	}
	if need := rdArrayNeed(end, c.num); need > c.limit {
		return false, &rdTooLargeError{reached: need, limit: c.limit}
	}
	c.open = append(c.open, c.num)
	return false, nil
}

// complete counts one element read, and reports whether it ended the reply.
func (c *rdReplyScan) complete() bool {
	for n := len(c.open); n > 0; n = len(c.open) {
		c.open[n-1]--
		if c.open[n-1] > 0 {
			return false
		}
		c.open = c.open[:n-1]
	}
	return true
}

// rdArrayNeed is the fewest bytes of a reply whose array header, announcing n
// elements, ends at offset end: each element takes at least 3 bytes ("+\r\n").
// It saturates at math.MaxInt64 instead of overflowing (n may be up to ten
// times the limit: see rdNoReplyLimit).
func rdArrayNeed(end, n int64) int64 {
	if n > (math.MaxInt64-end)/3 {
		return math.MaxInt64
	}
	return end + 3*n
}

// rdNoReplyLimit is rdReplyScan's limit when max_reply_bytes is 0 (none): the
// scan still counts replies. Small enough that no sum with it and no number
// scanned (at most 10 × limit + 9) overflows an int64.
const rdNoReplyLimit = 1 << 59

// rdWholeReply reports whether b, the start of a stream of replies, holds a
// whole reply.
func rdWholeReply(b []byte) bool {
	sc := rdReplyScan{limit: rdNoReplyLimit, lineHead: true}
	return sc.scan(b) == nil && sc.replies > 0
}

// idle reports whether the bytes scanned end where a reply ends, no more nor
// fewer replies than taken.
func (c *rdReplyScan) idle(taken int64) bool {
	return c.replies == taken && c.read == 0 && c.lineHead && c.skip == 0 && len(c.open) == 0
}
