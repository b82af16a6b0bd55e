package engine

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/tenant"
)

// Scheduled snapshots. Every SnapshotCheck each node looks at every
// database it knows of (registryView); a database due a snapshot (its
// snapshot_interval, else the node's SnapshotInterval, has passed since
// its newest snapshot) that changed since then gets one from the node
// whose embedded server leads the
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
	// dbs is every database as this node last heard, with when to look
	// at it next.
	dbs := map[string]*scheduled{}
	var listed time.Time          // the last full listing
	var walk, round time.Duration // what the last listing and round took
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(base, time.Minute)
		if listed.IsZero() || time.Since(listed) >= max(relistEvery, 100*walk) {
			// Everything, now and then: a change the watch missed (it
			// stopped, or the node was cut off) is not missed for long.
			since := e.registryView.mark()
			start := time.Now()
			if cfgs, err := e.List(ctx); err == nil {
				walk, listed = time.Since(start), time.Now()
				listedDBs := make(map[string]*scheduled, len(cfgs))
				for _, cfg := range cfgs {
					s := dbs[cfg.Name] // keeps its times
					if s == nil {
						s = &scheduled{}
					}
					s.cfg = cfg
					listedDBs[cfg.Name] = s
				}
				dbs = listedDBs
				e.registryView.applyAfter(since, dbs)
			}
		}
		e.registryView.applyAfter(0, dbs)
		start := time.Now()
		e.snapshotRound(ctx, dbs)
		round = time.Since(start)
		cancel()
		// Looking at a database costs little until it is due, but with
		// very many the round stays a tenth of the node's time at most.
		tick.Reset(max(every, 10*round))
	}
}

// relistEvery is how often the scheduler reads the whole registry; in
// between, the registry watch's changes keep its view (a listing of
// 100,000 databases took a second of CPU).
const relistEvery = 10 * time.Minute

// scheduled is a database as the snapshot scheduler knows it.
type scheduled struct {
	cfg      tenant.Config
	next     time.Time // when it is next due a look, as far as this node knows
	nextTrim time.Time // when its retention is next applied (zero: not set yet)
}

// registryView gathers the registry watch's changes for the snapshot
// scheduler between its listings of the whole registry.
type registryView struct {
	mu      sync.Mutex
	gen     uint64
	pending map[string]viewChange
}

type viewChange struct {
	cfg *tenant.Config // nil: deleted
	gen uint64
}

// changed and deleted record what the watch saw.
func (v *registryView) changed(cfg tenant.Config) { v.record(cfg.Name, &cfg) }
func (v *registryView) deleted(name string)       { v.record(name, nil) }

func (v *registryView) record(name string, cfg *tenant.Config) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pending == nil {
		v.pending = map[string]viewChange{}
	}
	v.gen++
	v.pending[name] = viewChange{cfg: cfg, gen: v.gen}
}

// mark returns what applyAfter takes to leave out the changes recorded
// so far: a listing begun afterwards holds them.
func (v *registryView) mark() uint64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.gen
}

// applyAfter applies to dbs the changes recorded after mark gen, and
// forgets every change recorded so far. A change that arrives late (the
// watch behind a listing) may set an entry back to an older value until
// the newer one arrives; nothing is lost.
func (v *registryView) applyAfter(gen uint64, dbs map[string]*scheduled) {
	v.mu.Lock()
	pending := v.pending
	v.pending = nil
	v.mu.Unlock()
	for name, ch := range pending {
		switch {
		case ch.gen <= gen:
		case ch.cfg == nil:
			delete(dbs, name)
		case dbs[name] != nil:
			dbs[name].cfg = *ch.cfg
		default:
			dbs[name] = &scheduled{cfg: *ch.cfg}
		}
	}
}

// retentionCheck is how often the node leading a database's stream
// applies its retention even when no snapshot was taken (snapshots age).
const retentionCheck = time.Hour

// snapshotRound takes the scheduled snapshots due now, and applies the
// retention of databases due it.
func (e *Engine) snapshotRound(ctx context.Context, dbs map[string]*scheduled) {
	now := e.now()
	for _, s := range dbs {
		if ctx.Err() != nil {
			return // the engine closes
		}
		cfg := s.cfg
		if s.nextTrim.IsZero() {
			// Spread the hourly retention checks over the hour rather than
			// run them all in the node's first round.
			s.nextTrim = now.Add(rand.N(retentionCheck))
		}
		if !now.Before(s.nextTrim) {
			s.nextTrim = now.Add(retentionCheck)
			if e.leads(ctx, cfg) {
				if _, err := e.applyRetention(ctx, cfg); err != nil {
					e.Logger.Warn("retention", "db", cfg.Name, "err", err)
				}
			}
			now = e.now()
		}
		interval := time.Duration(cfg.SnapshotInterval)
		if interval == 0 {
			interval = e.SnapshotInterval
		}
		if interval <= 0 || now.Before(s.next) {
			continue
		}
		at, err := e.scheduledSnapshot(ctx, cfg, interval)
		now = e.now()
		if err != nil {
			e.Logger.Warn("scheduled snapshot", "db", cfg.Name, "err", err)
			at = now.Add(interval / 4) // try again before long
		}
		s.next = at
	}
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
