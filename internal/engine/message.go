package engine

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
