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
	return append(buf, '}')
}
