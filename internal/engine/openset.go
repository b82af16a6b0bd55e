package engine

import (
	"os"
	"slices"
	"syscall"
	"time"

	"hasvc/internal/tenant"
)

// The open set: the databases open on this node (Engine.dbs). They close
// when unused for IdleTimeout (closeIdle), and when opening one more would
// pass MaxOpen (makeRoom).

// closeIdle closes databases nobody used for IdleTimeout, so that a node
// with thousands of databases keeps only the busy ones open.
func (e *Engine) closeIdle() {
	defer e.wg.Done()
	tick := time.NewTicker(max(e.IdleTimeout/4, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		}
		var idle []*DB
		e.mu.Lock()
		now := e.now()
		for name, ent := range e.dbs {
			select {
			case <-ent.ready:
			default:
				continue
			}
			// A copy with queued writes stays open until they are sent.
			if ent.db != nil && ent.refs == 0 && !ent.closing && ent.db.queued.Load() == 0 && now.Sub(ent.lastUsed) > e.IdleTimeout {
				ent.closing = true
				e.remove(name, ent)
				idle = append(idle, ent.db)
			}
		}
		e.mu.Unlock()
		for _, db := range idle {
			if err := db.close(); err != nil {
				e.Logger.Error("close idle database", "db", db.name, "err", err)
			}
		}
	}
}

// How many databases a node keeps open at once. An open database holds
// about eight files (its writer's, a reader's and the checkpointer's
// connections to the SQLite file and its WAL, and the shared memory
// file), and the embedded NATS server holds one for each stream written
// in the last minute or two (its newest block: the server closes it once
// the block has been idle 30 s, at its next sync). A node whose files run
// out fails the requests of every tenant, and its NATS server fails writes
// to every stream: so opening one more database than the open files allow
// first closes the ones used least recently, and with all of them in use
// it is refused (EUNAVAILABLE) rather than risk the node.

// filesPerOpenDB is about how many files an open database holds.
const filesPerOpenDB = 8

// openFileLimit is the process's open-file limit (0 if unknown).
func openFileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return int(min(lim.Cur, 1<<30))
}

// filesOpen counts the files the process holds open (-1 if the system
// does not say).
func filesOpen() int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return -1
	}
	return len(names) - 1 // less the directory's own
}

// defaultMaxOpen is MaxOpen when not set: as many databases as the
// open-file limit holds at filesPerOpenDB each, between 16 and
// maxDefaultOpen. The files the rest of the node holds lower it further
// (maxOpen).
func defaultMaxOpen() int {
	if lim := openFileLimit(); lim > 0 {
		return min(max(lim/filesPerOpenDB, 16), maxDefaultOpen)
	}
	return 1024
}

// maxDefaultOpen bounds the default of MaxOpen where files are plenty: an
// open database also holds memory (its connections' page caches, its
// goroutines), which files do not bound.
const maxDefaultOpen = 4096

// maxOpen is how many databases may be open now: MaxOpen, or, with MaxOpen
// left to its default, what the files the rest of the node holds leave
// (at least 16).
func (e *Engine) maxOpen() int {
	if !e.autoMaxOpen {
		return e.MaxOpen
	}
	if b := e.openBudget.Load(); b > 0 {
		return min(e.MaxOpen, int(b))
	}
	return e.MaxOpen
}

// refreshOpenBudget recounts, at most every openBudgetAge, the files the
// rest of the node holds (the NATS server's, the network's), and how many
// databases the others leave room for. The node's files less
// filesPerOpenDB for each open database are the others: an open database
// holds no more than that, so the count errs towards fewer databases. A
// margin of a sixteenth of the limit (at least 512) covers what the others
// open before the next count. Where the system does not list a process's
// files, every stream of the NATS server counts as holding one.
func (e *Engine) refreshOpenBudget() {
	if !e.autoMaxOpen {
		return
	}
	now := e.now().UnixNano()
	last := e.openBudgetAt.Load()
	if now-last < int64(openBudgetAge) || !e.openBudgetAt.CompareAndSwap(last, now) {
		return
	}
	lim := openFileLimit()
	if lim == 0 {
		return
	}
	count := e.countFiles
	if count == nil {
		count = filesOpen
	}
	others := 0
	if held := count(); held >= 0 {
		e.mu.Lock()
		open := len(e.dbs)
		e.mu.Unlock()
		others = max(held-open*filesPerOpenDB, 0)
	} else if e.StreamCount != nil {
		others = e.StreamCount()
	} else {
		return
	}
	e.openBudget.Store(int64(openBudget(lim, others)))
}

// openBudget is how many databases may be open under an open-file limit
// of lim while the rest of the node holds others.
func openBudget(lim, others int) int {
	margin := max(lim/16, 512)
	return max((lim-others-margin)/filesPerOpenDB, 16)
}

// openBudgetAge is how long a count of the node's files is used.
const openBudgetAge = 5 * time.Second

// makeRoom closes, when the open set is full, the databases used least
// recently that nobody uses: a sixteenth of MaxOpen at once, so that a
// stream of cold opens does not sort the set for each. The caller holds
// e.mu and closes the returned databases after unlocking it. An error
// means every open database is in use.
func (e *Engine) makeRoom() ([]*DB, error) {
	limit := e.maxOpen()
	if limit <= 0 || e.Memory || len(e.dbs) < limit {
		return nil, nil
	}
	type idle struct {
		name string
		ent  *entry
	}
	var cands []idle
	for name, ent := range e.dbs {
		select {
		case <-ent.ready:
		default:
			continue
		}
		if ent.db != nil && ent.refs == 0 && !ent.closing && ent.db.queued.Load() == 0 {
			cands = append(cands, idle{name, ent})
		}
	}
	if len(cands) == 0 {
		return nil, tenant.Errorf(tenant.EUNAVAILABLE, "%d databases are open on this node, its most (--max-open-dbs, open files), and all are in use; try again", len(e.dbs))
	}
	slices.SortFunc(cands, func(a, b idle) int { return a.ent.lastUsed.Compare(b.ent.lastUsed) })
	n := min(len(cands), max(len(e.dbs)-limit+1, limit/16))
	var closing []*DB
	for _, c := range cands[:n] {
		c.ent.closing = true
		e.remove(c.name, c.ent)
		closing = append(closing, c.ent.db)
	}
	return closing, nil
}

// closeLater closes dbs in the background (the engine waits for it when it
// closes).
func (e *Engine) closeLater(dbs []*DB) {
	if len(dbs) == 0 {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for _, db := range dbs {
			if err := db.close(); err != nil {
				e.Logger.Error("close database to make room", "db", db.name, "err", err)
			}
		}
	}()
}
