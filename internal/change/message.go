// Package change is hasvc's change format: the values, changes and
// messages that a database's stream carries, and their JSON. It is a public
// contract (HTTP results, the change feed, replicas and any NATS consumer
// read it), so it lives apart from the engine that produces it, and every
// adapter encodes values through it.
package change

import "strconv"

// Message is one committed write transaction: the body of one message in a
// database's stream, in the ancestor's change format. The stream sequence
// of the message is its position in the database's history; JetStream
// carries it in the message's metadata.
type Message struct {
	Node      string   `json:"node"`
	Changes   []Change `json:"changes"`
	Timestamp int64    `json:"timestamp_ns"`
	// LWW marks a message of an eventual-mode database: its row changes
	// resolve last-writer-wins by version (Timestamp, then Node), not by
	// their order in the stream. Timestamp is then the writing node's
	// hybrid logical clock: later than every version that node had seen.
	LWW bool `json:"lww,omitempty"`
}

// Version names one write of a row in an eventual-mode database: the
// timestamp and node of the message that wrote it. Of two versions of a
// row, the one with the later timestamp wins, and of equal timestamps the
// one whose node name sorts last.
type Version struct {
	Timestamp int64  `json:"timestamp_ns"`
	Node      string `json:"node"`
}

// After reports whether v wins over w.
func (v Version) After(w Version) bool {
	if v.Timestamp != w.Timestamp {
		return v.Timestamp > w.Timestamp
	}
	return v.Node > w.Node
}

// Operations of a Change.
const (
	OpInsert = "INSERT"
	OpUpdate = "UPDATE"
	OpDelete = "DELETE"
	OpSQL    = "SQL" // a schema change, carried as its SQL text
)

// Change is one row change or one schema change.
//
// Row changes of rowid tables carry the rowids; rows of WITHOUT ROWID
// tables carry none and are identified by their primary key. Columns lists
// the table's columns in order, including generated ones, and the values
// line up with it.
type Change struct {
	Database  string   `json:"database"`
	Table     string   `json:"table,omitempty"`
	Columns   []string `json:"columns,omitempty"`
	Operation string   `json:"operation"`
	OldRowID  *int64   `json:"old_rowid,omitempty"`
	NewRowID  *int64   `json:"new_rowid,omitempty"`
	OldValues Values   `json:"old_values,omitempty"`
	NewValues Values   `json:"new_values,omitempty"`
	SQL       string   `json:"sql,omitempty"`
	// Base is, in an LWW message, the version of the row this change
	// replaced where it was written (nil: the row had none). A copy
	// whose row has another version holds a write the writer had not
	// seen: a conflict, which the later version wins.
	Base *Version `json:"base,omitempty"`
}

// RowID returns a pointer to rowid, for Change's OldRowID and NewRowID.
func RowID(rowid int64) *int64 { return &rowid }

// AppendJSON appends m as JSON: what json.Marshal writes (less its HTML
// escaping), without its reflection, on the write path of every
// transaction.
func (m *Message) AppendJSON(buf []byte) []byte {
	buf = append(buf, `{"node":`...)
	buf = AppendString(buf, m.Node)
	buf = append(buf, `,"changes":[`...)
	for i := range m.Changes {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = m.Changes[i].appendJSON(buf)
	}
	buf = append(buf, `],"timestamp_ns":`...)
	buf = strconv.AppendInt(buf, m.Timestamp, 10)
	if m.LWW {
		buf = append(buf, `,"lww":true`...)
	}
	return append(buf, '}')
}

func (c *Change) appendJSON(buf []byte) []byte {
	buf = append(buf, `{"database":`...)
	buf = AppendString(buf, c.Database)
	if c.Table != "" {
		buf = append(buf, `,"table":`...)
		buf = AppendString(buf, c.Table)
	}
	if len(c.Columns) > 0 {
		buf = append(buf, `,"columns":[`...)
		for i, col := range c.Columns {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = AppendString(buf, col)
		}
		buf = append(buf, ']')
	}
	buf = append(buf, `,"operation":`...)
	buf = AppendString(buf, c.Operation)
	if c.OldRowID != nil {
		buf = append(buf, `,"old_rowid":`...)
		buf = strconv.AppendInt(buf, *c.OldRowID, 10)
	}
	if c.NewRowID != nil {
		buf = append(buf, `,"new_rowid":`...)
		buf = strconv.AppendInt(buf, *c.NewRowID, 10)
	}
	if len(c.OldValues) > 0 {
		buf = append(buf, `,"old_values":`...)
		buf = c.OldValues.appendJSON(buf)
	}
	if len(c.NewValues) > 0 {
		buf = append(buf, `,"new_values":`...)
		buf = c.NewValues.appendJSON(buf)
	}
	if c.SQL != "" {
		buf = append(buf, `,"sql":`...)
		buf = AppendString(buf, c.SQL)
	}
	if c.Base != nil {
		buf = append(buf, `,"base":{"timestamp_ns":`...)
		buf = strconv.AppendInt(buf, c.Base.Timestamp, 10)
		buf = append(buf, `,"node":`...)
		buf = AppendString(buf, c.Base.Node)
		buf = append(buf, '}')
	}
	return append(buf, '}')
}
