package servant

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fae-go/fae/idl/fun/rpc"
	"github.com/fae-go/fae/pool"
)

// maxMergeDepth bounds the nesting my_merge merges (the original's limit was 32, and it panicked past it).
const maxMergeDepth = 32

// ErrMerge: my_merge could not merge (bad arguments, not exactly one row, bad JSON).
var ErrMerge = errors.New("mysql: my_merge")

// merge deep-merges the JSON object jsonValue into column of the one row of
// table matching where, in one transaction on the row's server: SELECT … FOR
// UPDATE locks the row, so concurrent merges into it run one after another and
// none is lost (the original read before taking a node-local lock and lost
// updates). table and column must be plain identifiers; where is the caller's
// trusted SQL fragment, as in the original. The new JSON is bound as a parameter.
func (m *mysqlServant) merge(ctx context.Context, poolName, table string, hintID int64, where, column, jsonValue string) (*rpc.MysqlMergeResult_, error) {
	if !pool.IsIdentifier(table) || !pool.IsIdentifier(column) {
		return nil, fmt.Errorf("%w: table %q and column %q must be plain identifiers", ErrMerge, table, column)
	}
	if where == "" {
		return nil, fmt.Errorf("%w: empty where", ErrMerge)
	}
	var incoming map[string]any
	if err := json.Unmarshal([]byte(jsonValue), &incoming); err != nil || incoming == nil {
		return nil, fmt.Errorf("%w: jsonValue is not a JSON object: %v", ErrMerge, err)
	}
	var newVal string
	err := m.cluster.Tx(ctx, poolName, hintID, func(ctx context.Context, tx *sql.Tx) error {
		stored, err := selectOneForUpdate(ctx, tx, table, column, where)
		if err != nil {
			return err
		}
		merged, err := mergeJSON(stored, incoming)
		if err != nil {
			return err
		}
		newVal = merged
		_, err = tx.ExecContext(ctx, "UPDATE `"+table+"` SET `"+column+"` = ? WHERE "+where, merged)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &rpc.MysqlMergeResult_{Ok: true, NewVal_: newVal}, nil
}

// selectOneForUpdate reads and locks column of the one row matching where; NULL reads as "".
func selectOneForUpdate(ctx context.Context, tx *sql.Tx, table, column, where string) (string, error) {
	rows, err := tx.QueryContext(ctx, "SELECT `"+column+"` FROM `"+table+"` WHERE "+where+" FOR UPDATE")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var stored sql.NullString
	n := 0
	for rows.Next() {
		n++
		if err := rows.Scan(&stored); err != nil {
			return "", err
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	if n != 1 {
		return "", fmt.Errorf("%w: %d rows of %s match %q, want exactly 1", ErrMerge, n, table, where)
	}
	return stored.String, nil
}

// mergeJSON deep-merges incoming into the stored JSON object (empty = {}):
// objects merge recursively, any other value (arrays included) replaces.
// The result has sorted keys and no HTML escaping.
func mergeJSON(stored string, incoming map[string]any) (string, error) {
	base := map[string]any{}
	if stored != "" {
		if err := json.Unmarshal([]byte(stored), &base); err != nil || base == nil {
			return "", fmt.Errorf("%w: the stored value is not a JSON object", ErrMerge)
		}
	}
	if err := deepMerge(base, incoming, 0); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(base); err != nil {
		return "", err
	}
	return string(bytes.TrimRight(buf.Bytes(), "\n")), nil
}

func deepMerge(dst, src map[string]any, depth int) error {
	if depth >= maxMergeDepth {
		return fmt.Errorf("%w: JSON nested deeper than %d", ErrMerge, maxMergeDepth)
	}
	for k, v := range src {
		sv, srcObj := v.(map[string]any)
		dv, dstObj := dst[k].(map[string]any)
		if srcObj && dstObj {
			if err := deepMerge(dv, sv, depth+1); err != nil {
				return err
			}
			continue
		}
		dst[k] = v
	}
	return nil
}
