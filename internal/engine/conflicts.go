package engine

import (
	"context"
	"encoding/json"
	"time"

	"hasvc/internal/change"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Conflict is a version of a row of an eventual-mode database that lost
// to a later one written without having seen it (package apply's
// last-writer-wins), as this copy recorded it.
type Conflict struct {
	Table string `json:"table"`
	// RowID names the row of a rowid table; Key, the primary key values
	// of a WITHOUT ROWID table's row.
	RowID *int64         `json:"rowid,omitempty"`
	Key   change.Values  `json:"key,omitempty"`
	Lost  change.Version `json:"lost"`
	Won   change.Version `json:"won"`
	// Columns and Values are the row as the losing version left it;
	// Values is null if it deleted the row.
	Columns []string      `json:"columns"`
	Values  change.Values `json:"values"`
}

// Conflicts returns database name's newest conflicts on this node's copy,
// newest winner first, at most limit.
func (e *Engine) Conflicts(ctx context.Context, name string, limit int) ([]Conflict, error) {
	d, release, err := e.Acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	defer release()
	r, h, err := d.reader(ctx, time.Time{})
	if err != nil {
		return nil, err
	}
	defer d.putBack(r, h)
	out := []Conflict{}
	err = r.Internal(func() error {
		if n, err := r.QueryInt64("SELECT count(*) FROM sqlite_schema WHERE name = '_hasvc_conflicts'"); err != nil || n == 0 {
			return err // no eventual-mode write has been applied or made here
		}
		return r.Query(`SELECT tbl, rowkey, ts, node, winner_ts, winner_node, columns, vals FROM _hasvc_conflicts
			ORDER BY winner_ts DESC, ts DESC LIMIT ?`, []any{limit}, func(s *sqlite.Stmt) error {
			var c Conflict
			c.Table, _ = s.Column(0).(string)
			switch k := s.Column(1).(type) {
			case int64:
				c.RowID = &k
			case string:
				if err := json.Unmarshal([]byte(k), &c.Key); err != nil {
					return err
				}
			}
			c.Lost.Timestamp, _ = s.Column(2).(int64)
			c.Lost.Node, _ = s.Column(3).(string)
			c.Won.Timestamp, _ = s.Column(4).(int64)
			c.Won.Node, _ = s.Column(5).(string)
			cols, _ := s.Column(6).(string)
			if err := json.Unmarshal([]byte(cols), &c.Columns); err != nil {
				return err
			}
			if vals, ok := s.Column(7).(string); ok {
				if err := json.Unmarshal([]byte(vals), &c.Values); err != nil {
					return err
				}
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, tenant.Wrap(tenant.EINTERNAL, err, "read the conflict log")
	}
	return out, nil
}
