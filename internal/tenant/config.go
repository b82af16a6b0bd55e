package tenant

import (
	"encoding/json"
	"time"
)

// Replication modes, chosen per database at creation.
const (
	// ModeStrong serializes writes cluster-wide through the stream with
	// JetStream's expected-last-sequence check.
	ModeStrong = "strong"
	// ModeEventual is the ancestor's leaderless last-writer-wins.
	ModeEventual = "eventual"
)

// Config is a database's cluster-wide configuration, stored in its registry
// entry.
type Config struct {
	Name     string `json:"name"`
	Mode     string `json:"mode"`
	Replicas int    `json:"replicas"`
	// MaxStatementTime bounds how long one request (HTTP) or statement
	// (pgwire) may run before it is interrupted; 0: the node's default.
	MaxStatementTime Duration `json:"max_statement_time,omitempty"`
	// MaxSize bounds the database's size in bytes; 0: the node's
	// default.
	MaxSize int64 `json:"max_size,omitempty"`
	// SnapshotInterval is how often a snapshot of the database is taken
	// if it changed; 0: the node's default.
	SnapshotInterval Duration `json:"snapshot_interval,omitempty"`
	// Retention is how much history the database keeps; nil: the node's
	// default.
	Retention *Retention `json:"retention,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	// Account is the NATS account that holds the database's stream and
	// bucket (AccountOf its name); "" for a database created before
	// databases had accounts of their own, or on a node that uses an
	// external NATS server: the account of the node's connection.
	Account string `json:"account,omitempty"`
}

// Retention is how much of a database's history is kept: its newest
// Snapshots snapshots, every snapshot younger than MaxAge (negative:
// all), and the stream after the oldest of them. Zero fields follow the
// node's defaults.
type Retention struct {
	Snapshots int      `json:"snapshots,omitempty"`
	MaxAge    Duration `json:"max_age,omitempty"`
}

// MaxStatementTimeLimit is the largest max_statement_time a database may
// have.
const MaxStatementTimeLimit = time.Hour

// Duration is a time.Duration that JSON writes as Go's duration text
// ("30s", "1m30s").
type Duration time.Duration

// MarshalJSON writes d as a string such as "30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a string such as "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return Errorf(EINVALID, "a duration is a string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return Errorf(EINVALID, "duration %q: want a duration such as 30s or 2m", s)
	}
	*d = Duration(v)
	return nil
}

// Normalize fills defaults and validates c.
func (c *Config) Normalize() error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	switch c.Mode {
	case "":
		c.Mode = ModeStrong
	case ModeStrong, ModeEventual:
	default:
		return Errorf(EINVALID, "invalid mode %q: want %q or %q", c.Mode, ModeStrong, ModeEventual)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return Errorf(EINVALID, "invalid replicas %d: want 1 to 5", c.Replicas)
	}
	if c.MaxSize < 0 {
		return Errorf(EINVALID, "invalid max_size %d: want a number of bytes", c.MaxSize)
	}
	if d := time.Duration(c.MaxStatementTime); d < 0 || d > MaxStatementTimeLimit {
		return Errorf(EINVALID, "invalid max_statement_time %v: want up to %v", d, MaxStatementTimeLimit)
	}
	if r := c.Retention; r != nil && (r.Snapshots < 0 || r.Snapshots > 1000) {
		return Errorf(EINVALID, "invalid retention snapshots %d: want 1 to 1000 (0: the node's default)", r.Snapshots)
	}
	if d := time.Duration(c.SnapshotInterval); d != 0 && d < time.Second {
		return Errorf(EINVALID, "invalid snapshot_interval %v: want 0 (the node's default) or at least 1s", d)
	}
	return nil
}

// SameSettings reports whether c and o ask for the same database: every
// setting a create takes, not when or where it was made.
func (c Config) SameSettings(o Config) bool {
	if (c.Retention == nil) != (o.Retention == nil) || c.Retention != nil && *c.Retention != *o.Retention {
		return false
	}
	return c.Name == o.Name && c.Mode == o.Mode && c.Replicas == o.Replicas &&
		c.MaxStatementTime == o.MaxStatementTime && c.MaxSize == o.MaxSize &&
		c.SnapshotInterval == o.SnapshotInterval
}

// MaxNodeSlot is the number of node slots: eventual mode gives node slot n
// the rowids n·2^43 to (n+1)·2^43 - 1 (RowidRange). Every rowid stays below
// 2^53, which JSON numbers (JavaScript's) still hold exactly.
const MaxNodeSlot = 1023

// RowidRange returns the rowids of node slot n, 1 to MaxNodeSlot.
func RowidRange(n int) (lo, hi int64) {
	lo = int64(n) << 43
	return lo, lo + 1<<43 - 1
}
