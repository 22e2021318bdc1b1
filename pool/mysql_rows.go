package pool

import (
	"database/sql"
	"fmt"
	"sync/atomic"
)

// What one row held by scanRows costs beyond its bytes: the Go string header
// of each cell and the slice header of the row (64-bit), so that a reply of
// many empty cells is counted too.
const (
	cellOverhead = 16
	rowOverhead  = 24
)

// replyBudget is the byte allowance of one reply (Limits.MaxReplyBytes),
// shared by the servers that build it (the shards of QueryShards). Safe for
// concurrent use; a nil budget counts nothing.
type replyBudget struct {
	limit   int64 // bytes; 0 = no limit
	servers int   // servers adding to the reply
	bytes   atomic.Int64
	rows    atomic.Int64
}

// take counts one row of n bytes; past the limit it returns a KindTooLarge
// error naming the rows read, the bytes and the limit.
func (b *replyBudget) take(n int) error {
	if b == nil || b.limit <= 0 {
		return nil
	}
	total, rows := b.bytes.Add(int64(n)), b.rows.Add(1)
	if total <= b.limit {
		return nil
	}
	over := ""
	if b.servers > 1 {
		over = fmt.Sprintf(", summed over %d shards", b.servers)
	}
	return &kindError{KindTooLarge, fmt.Errorf("reply over max_reply_bytes: %d rows read, %d bytes > limit %d bytes%s; the statement was stopped",
		rows, total, b.limit, over)}
}

// scanRows reads every row as strings; each row is its own slice. SQL NULL is
// "NULL" when nullable, else a KindRefused error naming the column. A row
// that would take the reply past budget is not copied: stop is called (the
// statement is ended, see mysqlServer.rows) and the KindTooLarge error returned.
func scanRows(r *sql.Rows, nullable bool, budget *replyBudget, stop func()) ([]string, [][]string, error) {
	defer r.Close()
	cols, err := r.Columns()
	if err != nil {
		return nil, nil, err
	}
	raw := make([]sql.RawBytes, len(cols))
	dest := make([]any, len(cols))
	for i := range raw {
		dest[i] = &raw[i]
	}
	rows := [][]string{}
	for r.Next() {
		if err := r.Scan(dest...); err != nil {
			return nil, nil, err
		}
		size := rowOverhead
		for _, b := range raw {
			size += len(b) + cellOverhead
		}
		if err := budget.take(size); err != nil {
			stop()
			return nil, nil, err
		}
		row := make([]string, len(cols))
		for i, b := range raw {
			switch {
			case b != nil:
				row[i] = string(b)
			case nullable:
				row[i] = "NULL"
			default:
				return nil, nil, &kindError{KindRefused, fmt.Errorf("NULL value in column %q (allow_nullable_columns is false)", cols[i])}
			}
		}
		rows = append(rows, row)
	}
	return cols, rows, r.Err()
}
