package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/change"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
)

// Forks and point-in-time copies. A fork of database src at sequence N
// is src's newest snapshot at or before N with src's stream messages
// after it up to N applied: exactly src as it was once message N was
// applied. The new database starts from that file, stored as its own
// snapshot at sequence 0, so every node's copy of it boots from there,
// and gets its own empty stream.

// ForkPoint says which state of a database to copy: the one after
// message Sequence, else the one at Time (after the last message stored
// at or before it), else the current one.
type ForkPoint struct {
	Database string    `json:"database"`
	Sequence uint64    `json:"sequence,omitempty"`
	Time     time.Time `json:"time,omitzero"`
}

// Fork creates database cfg as a copy of from's database at from's point.
// It returns the new configuration and the sequence of from's database
// that the copy reflects. EINVALID when the point is outside the kept
// history (before the oldest snapshot of a trimmed stream, or after the
// last message).
func (e *Engine) Fork(ctx context.Context, cfg tenant.Config, from ForkPoint) (tenant.Config, uint64, error) {
	if err := tenant.ValidateName(from.Database); err != nil {
		return cfg, 0, err
	}
	srcCfg, err := e.Registry.Get(ctx, from.Database)
	if err != nil {
		return cfg, 0, err
	}
	if cfg.Name == from.Database {
		return cfg, 0, tenant.Errorf(tenant.EINVALID, "a fork needs a name of its own")
	}
	tmpDir := filepath.Join(e.DataDir, "tmp")
	if e.Memory {
		tmpDir = os.TempDir()
	}
	file, at, err := e.forkFile(ctx, srcCfg, from, tmpDir)
	if err != nil {
		return cfg, 0, err
	}
	defer os.Remove(file)
	cfg, err = e.create(ctx, cfg, file)
	return cfg, at, err
}

// forkFile builds, in tmpDir, the SQLite file of from's point (of the
// database srcCfg): a file whose hasvc state is that of a new database
// (nothing applied).
func (e *Engine) forkFile(ctx context.Context, srcCfg tenant.Config, from ForkPoint, tmpDir string) (string, uint64, error) {
	src := from.Database
	st, err := e.streamOf(ctx, srcCfg)
	if err != nil {
		return "", 0, err
	}
	state := st.CachedInfo().State
	seq := state.LastSeq
	switch {
	case from.Sequence > 0:
		if from.Sequence > state.LastSeq {
			return "", 0, tenant.Errorf(tenant.EINVALID, "sequence %d is after database %s's last, %d", from.Sequence, src, state.LastSeq)
		}
		seq = from.Sequence
	case !from.Time.IsZero():
		if seq, err = sequenceAt(ctx, st, state, from.Time); err != nil {
			return "", 0, err
		}
	}
	b, err := e.bucket(ctx, srcCfg)
	if err != nil {
		return "", 0, err
	}
	list, err := listSnapshots(ctx, b)
	if err != nil {
		return "", 0, err
	}
	var base *Snapshot
	for i := range list { // newest first
		if list[i].Sequence <= seq {
			base = &list[i]
			break
		}
	}
	oldest := uint64(0) // the oldest restorable sequence
	if state.FirstSeq > 1 {
		oldest = state.FirstSeq - 1
		if len(list) > 0 {
			oldest = list[len(list)-1].Sequence
		}
	}
	if base == nil && state.FirstSeq > 1 || seq < oldest {
		return "", 0, tenant.Errorf(tenant.EINVALID, "sequence %d of database %s is no longer kept: its history starts at sequence %d", seq, src, oldest)
	}
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return "", 0, err
	}
	f, err := os.CreateTemp(tmpDir, src+"-fork-*.db")
	if err != nil {
		return "", 0, err
	}
	file := f.Name()
	f.Close()
	fail := func(err error) (string, uint64, error) {
		os.Remove(file)
		for _, suffix := range []string{"-wal", "-shm", "-journal"} {
			os.Remove(file + suffix)
		}
		return "", 0, err
	}
	from0 := uint64(0)
	if base != nil {
		if err := installSnapshot(ctx, b, base, file, tmpDir); err != nil {
			return fail(err)
		}
		from0 = base.Sequence
	} else {
		os.Remove(file) // SQLite makes it
	}
	c, err := sqlite.Open("file:"+file, sqlite.Options{})
	if err != nil {
		return fail(err)
	}
	err = prepareFile(c)
	if err == nil {
		err = applyRange(ctx, c, st, from0, seq)
	}
	if err == nil {
		// A new database: nothing of its own stream applied, no writes of
		// its own ahead of it, and the file whole (no WAL beside it).
		err = c.Internal(func() error {
			return c.Exec("UPDATE _hasvc_state SET applied_seq = 0; DELETE FROM _hasvc_ahead; DELETE FROM _hasvc_requests; PRAGMA journal_mode = DELETE")
		})
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(fmt.Errorf("build the copy of %s at %d: %w", src, seq, err))
	}
	e.Logger.Info("fork built", "from", src, "sequence", seq, "snapshot", from0)
	return file, seq, nil
}

// applyRange applies stream st's messages after from up to to on c, as a
// copy's apply would (the rows of the ahead sequences the file records
// replayed without their schema changes).
func applyRange(ctx context.Context, c *sqlite.Conn, st jetstream.Stream, from, to uint64) error {
	if from >= to {
		return nil
	}
	ahead := map[uint64]bool{}
	err := c.Internal(func() error {
		return c.Query("SELECT seq FROM _hasvc_ahead", nil, func(s *sqlite.Stmt) error {
			seq, _ := s.Column(0).(int64)
			ahead[uint64(seq)] = true
			return nil
		})
	})
	if err != nil {
		return err
	}
	if err := c.ApplyMode(true); err != nil {
		return err
	}
	defer c.ApplyMode(false)
	if err := c.Internal(func() error { return c.Exec("BEGIN IMMEDIATE") }); err != nil {
		return err
	}
	for seq := from + 1; seq <= to; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			c.Internal(func() error { return c.Exec("ROLLBACK") })
			return fmt.Errorf("read message %d: %w", seq, err)
		}
		var m change.Message
		if err := json.Unmarshal(raw.Data, &m); err != nil {
			c.Internal(func() error { return c.Exec("ROLLBACK") })
			return fmt.Errorf("decode message %d: %w", seq, err)
		}
		if err := c.ApplyMessage(&m, ahead[seq]); err != nil {
			c.Internal(func() error { return c.Exec("ROLLBACK") })
			return fmt.Errorf("apply message %d: %w", seq, err)
		}
	}
	return c.Internal(func() error { return c.Exec("COMMIT") })
}

// sequenceAt returns the last sequence of stream st stored at or before
// t (state is st's): a binary search over the messages' times.
func sequenceAt(ctx context.Context, st jetstream.Stream, state jetstream.StreamState, t time.Time) (uint64, error) {
	if state.LastSeq == 0 || t.Before(state.FirstTime) && state.FirstSeq <= 1 {
		return 0, nil // before the first write: the empty database
	}
	if t.Before(state.FirstTime) {
		return 0, tenant.Errorf(tenant.EINVALID, "%s is before the oldest kept history (%s)", t.Format(time.RFC3339), state.FirstTime.Format(time.RFC3339))
	}
	lo, hi := state.FirstSeq, state.LastSeq // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		m, err := st.GetMsg(ctx, mid)
		if err != nil {
			return 0, tenant.Wrap(tenant.EUNAVAILABLE, err, "read message: "+err.Error())
		}
		if m.Time.After(t) {
			hi = mid - 1
		} else {
			lo = mid
		}
	}
	return lo, nil
}

// Write is one write transaction of a database's history.
type Write struct {
	Sequence uint64    `json:"sequence"`
	Time     time.Time `json:"time"`
	Node     string    `json:"node"`
	Tables   []string  `json:"tables"`
}

// History returns database name's newest writes, newest first, at most
// limit of them, and the oldest sequence its stream keeps.
func (e *Engine) History(ctx context.Context, name string, limit int) ([]Write, uint64, error) {
	if err := tenant.ValidateName(name); err != nil {
		return nil, 0, err
	}
	cfg, err := e.Registry.Get(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	st, err := e.streamOf(ctx, cfg)
	if err != nil {
		return nil, 0, err
	}
	state := st.CachedInfo().State
	out := []Write{}
	for seq := state.LastSeq; seq >= max(state.FirstSeq, 1) && len(out) < limit; seq-- {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			return nil, 0, tenant.Wrap(tenant.EUNAVAILABLE, err, "read message: "+err.Error())
		}
		var m change.Message
		if err := json.Unmarshal(raw.Data, &m); err != nil {
			return nil, 0, fmt.Errorf("decode message %d: %w", seq, err)
		}
		w := Write{Sequence: seq, Time: raw.Time.UTC(), Node: m.Node, Tables: []string{}}
		seen := map[string]bool{}
		for _, c := range m.Changes {
			t := c.Table
			if c.Operation == change.OpSQL {
				t = "(schema)"
			}
			if t != "" && !seen[t] {
				seen[t] = true
				w.Tables = append(w.Tables, t)
			}
		}
		out = append(out, w)
	}
	return out, state.FirstSeq, nil
}
