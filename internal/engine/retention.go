package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/tenant"
)

// Bounded history. A database's retention is an age (MaxAge) and a count
// (Snapshots): every state of the database younger than MaxAge stays
// restorable, so the stream keeps every message after the newest
// snapshot at least MaxAge old (the base that rebuilds the oldest such
// state), and that snapshot, every newer one and the newest Snapshots
// are kept; older snapshots are deleted and the stream is purged below
// the base, but never below a sequence an open copy on a live node has
// yet to apply. Without a snapshot MaxAge old nothing is trimmed.

// Default retention, for databases whose configuration sets none.
const (
	DefaultRetentionSnapshots = 1
	DefaultRetentionAge       = 7 * 24 * time.Hour
)

// retention returns the snapshots count and age database cfg keeps.
func (e *Engine) retention(cfg tenant.Config) (keep int, age time.Duration) {
	keep, age = e.RetentionSnapshots, e.RetentionAge
	if keep <= 0 {
		keep = DefaultRetentionSnapshots
	}
	if age == 0 {
		age = DefaultRetentionAge
	}
	if r := cfg.Retention; r != nil {
		if r.Snapshots > 0 {
			keep = r.Snapshots
		}
		if r.MaxAge != 0 {
			age = time.Duration(r.MaxAge)
		}
	}
	return keep, age
}

// applyRetention deletes database name's snapshots that its retention no
// longer keeps and purges its stream below the oldest kept one. It
// reports the first sequence the stream keeps (0: nothing trimmed).
func (e *Engine) applyRetention(ctx context.Context, cfg tenant.Config) (uint64, error) {
	keep, age := e.retention(cfg)
	b, err := e.bucket(ctx, cfg)
	if err != nil {
		return 0, err
	}
	list, err := listSnapshots(ctx, b)
	if err != nil || len(list) == 0 {
		return 0, err
	}
	if age < 0 {
		return 0, nil // keep everything
	}
	now := e.now()
	base := -1               // the newest snapshot at least age old
	for i, s := range list { // newest first
		if now.Sub(s.Time) >= age {
			base = i
			break
		}
	}
	if base < 0 {
		return 0, nil
	}
	for i, s := range list[base+1:] {
		if base+1+i < keep {
			continue
		}
		if err := b.Delete(ctx, s.Name); err != nil {
			return 0, fmt.Errorf("delete snapshot %d: %w", s.Sequence, err)
		}
		e.Logger.Info("snapshot deleted by retention", "db", cfg.Name, "sequence", s.Sequence, "time", s.Time)
	}
	oldest := list[base].Sequence
	// Open copies that have not applied up to the oldest kept snapshot
	// still need the messages before it.
	st, err := e.streamOf(ctx, cfg)
	if err != nil {
		return 0, err
	}
	views, err := e.nodeViews(ctx, cfg.Name, st.CachedInfo().State.LastSeq)
	if err != nil {
		return 0, err
	}
	for _, v := range views {
		if v.Open && v.Stuck == "" {
			oldest = min(oldest, v.AppliedSeq)
		}
	}
	keepFrom := oldest + 1
	if keepFrom <= st.CachedInfo().State.FirstSeq {
		return 0, nil
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSequence(keepFrom)); err != nil {
		return 0, fmt.Errorf("trim stream below %d: %w", keepFrom, err)
	}
	e.Logger.Info("stream trimmed by retention", "db", cfg.Name, "first_kept", keepFrom)
	return keepFrom, nil
}
