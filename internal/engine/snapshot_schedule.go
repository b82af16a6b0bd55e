package engine

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/tenant"
)

// Scheduled snapshots. Every SnapshotCheck each node walks the registry;
// a database due a snapshot (its snapshot_interval, else the node's
// SnapshotInterval, has passed since its newest snapshot) that changed
// since then gets one from the node whose embedded server leads the
// database's stream (a single node leads all of its streams), so one
// node takes each scheduled snapshot. A leader change between two checks
// can make two nodes take one each; both are whole and correct.

// DefaultSnapshotCheck is how often a node looks for databases due a
// scheduled snapshot unless SnapshotCheck says otherwise.
const DefaultSnapshotCheck = 5 * time.Second

func (e *Engine) scheduleSnapshots() {
	defer e.wg.Done()
	every := e.SnapshotCheck
	if every <= 0 {
		every = DefaultSnapshotCheck
	}
	// A round reads every database's registry entry: with many
	// databases it waits ten times as long as that walk took, so the walk
	// stays a tenth of the node's time at most.
	tick := time.NewTimer(every)
	defer tick.Stop()
	// Closing the engine ends a round at once, not after its requests
	// time out against a cluster going down.
	base, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		<-e.stop
		stop()
	}()
	// next is when each database is next due a look, as far as this node
	// knows; nextTrim when its retention is next applied.
	next := map[string]time.Time{}
	nextTrim := map[string]time.Time{}
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(base, time.Minute)
		walk := e.snapshotRound(ctx, next, nextTrim)
		cancel()
		tick.Reset(max(every, 10*walk))
	}
}

// retentionCheck is how often the node leading a database's stream
// applies its retention even when no snapshot was taken (snapshots age).
const retentionCheck = time.Hour

// snapshotRound takes the scheduled snapshots due now, and applies the
// retention of databases due it.
func (e *Engine) snapshotRound(ctx context.Context, next, nextTrim map[string]time.Time) (walk time.Duration) {
	start := time.Now()
	cfgs, err := e.List(ctx)
	walk = time.Since(start)
	if err != nil {
		return walk // the registry is unavailable: next round
	}
	seen := make(map[string]bool, len(cfgs))
	for _, cfg := range cfgs {
		seen[cfg.Name] = true
		if _, known := nextTrim[cfg.Name]; !known {
			// Spread the hourly retention checks over the hour rather than
			// run them all in the node's first round.
			nextTrim[cfg.Name] = e.now().Add(rand.N(retentionCheck))
		}
		if !e.now().Before(nextTrim[cfg.Name]) {
			nextTrim[cfg.Name] = e.now().Add(retentionCheck)
			if e.leads(ctx, cfg) {
				if _, err := e.applyRetention(ctx, cfg); err != nil {
					e.Logger.Warn("retention", "db", cfg.Name, "err", err)
				}
			}
		}
		interval := time.Duration(cfg.SnapshotInterval)
		if interval == 0 {
			interval = e.SnapshotInterval
		}
		if interval <= 0 || e.now().Before(next[cfg.Name]) {
			continue
		}
		at, err := e.scheduledSnapshot(ctx, cfg, interval)
		if err != nil {
			e.Logger.Warn("scheduled snapshot", "db", cfg.Name, "err", err)
			at = e.now().Add(interval / 4) // try again before long
		}
		next[cfg.Name] = at
	}
	for name := range next {
		if !seen[name] {
			delete(next, name)
		}
	}
	for name := range nextTrim {
		if !seen[name] {
			delete(nextTrim, name)
		}
	}
	return walk
}

// scheduledSnapshot takes a snapshot of database name if it is due, it
// changed, and this node leads its stream; it returns when to look next.
func (e *Engine) scheduledSnapshot(ctx context.Context, cfg tenant.Config, interval time.Duration) (time.Time, error) {
	name := cfg.Name
	now := e.now()
	st, err := e.streamOf(ctx, cfg)
	if err != nil {
		return now, err
	}
	info := st.CachedInfo()
	if !e.leader(info) {
		return now.Add(interval), nil // the leader's node takes it
	}
	b, err := e.bucket(ctx, cfg)
	if err != nil {
		return now, err
	}
	newest, err := newestSnapshot(ctx, b)
	if err != nil {
		return now, err
	}
	if newest != nil && now.Sub(newest.Time) < interval {
		return newest.Time.Add(interval), nil
	}
	if info.State.LastSeq == 0 || newest != nil && newest.Sequence >= info.State.LastSeq {
		return now.Add(interval), nil // nothing changed
	}
	db, release, err := e.Acquire(ctx, name)
	if err != nil {
		return now, err
	}
	defer release()
	if _, _, err := db.TakeSnapshot(ctx); err != nil {
		return now, err
	}
	if _, err := e.applyRetention(ctx, cfg); err != nil {
		e.Logger.Warn("retention", "db", name, "err", err)
	}
	return now.Add(interval), nil
}

// leads reports whether this node's embedded server leads database
// cfg's stream.
func (e *Engine) leads(ctx context.Context, cfg tenant.Config) bool {
	st, err := e.streamOf(ctx, cfg)
	return err == nil && e.leader(st.CachedInfo())
}

// leader reports whether this node's embedded server leads the stream
// described by info (a stream of a single server has no leader to ask).
func (e *Engine) leader(info *jetstream.StreamInfo) bool {
	c := info.Cluster
	return c == nil || c.Leader == "" || c.Leader == e.NC.ConnectedServerName()
}
