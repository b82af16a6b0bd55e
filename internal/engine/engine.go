package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/registry"
	"hasvc/internal/sqlite"
	"hasvc/internal/tenant"
	"hasvc/migrations"
)

// Engine manages this node's databases. Set the exported fields, then call
// Open; call Close when done.
type Engine struct {
	DataDir string // SQLite files live in DataDir/db
	Memory  bool   // keep SQLite copies in memory (the log stays in JetStream)
	Node    string // node name, written into every change message
	NC      *nats.Conn
	JS      jetstream.JetStream
	// ConnectAccount connects to one of the databases' NATS accounts
	// (accounts.go); nil: every database lives in NC's account.
	ConnectAccount func(account string) (*nats.Conn, jetstream.JetStream, error)
	// Accounts puts new databases in the databases' accounts (set on a
	// node that embeds its server and has no cluster). Otherwise they go
	// to the node's own account; the databases' accounts of those made
	// elsewhere are reached through ConnectAccount.
	Accounts bool
	Registry *registry.Registry
	Logger   *slog.Logger
	Now      func() time.Time

	Advertise     string              // this node's HTTP address, listed in the nodes bucket
	Version       string              // this node's build, shown in GET /cluster
	JetStreamView func() (any, error) // the embedded server's JetStream view, if any
	// ClusterSize, if set, is how many nodes the embedded server's
	// JetStream cluster knows, online or not (0 if it cannot tell).
	ClusterSize func() int
	// Durable makes acknowledged messages survive a power loss when the
	// embedded server does not fsync each one itself (group commit, see
	// broker.Flusher); nil when it does, or when the policy promises
	// less.
	Durable Durability
	// SyncQueued flushes an eventual-mode write queued while the stream
	// is out of reach (outbox.go) to disk before its answer: the node's
	// fsync policy is "always".
	SyncQueued bool

	Replicas    int           // default stream replicas for new databases
	Readers     int           // reader connections per database
	IdleTimeout time.Duration // close databases unused this long (not in memory mode)
	MaxOpen     int           // databases open at once (openset.go); 0: from the open-file limit
	// StreamCount, if set, counts the streams of the embedded NATS
	// server: where the system does not list the process's open files,
	// each is taken to hold one (openset.go).
	StreamCount    func() int
	PublishTimeout time.Duration // how long a write waits for JetStream
	TxIdleTimeout  time.Duration // how long an interactive transaction may hold the writer idle (default DefaultTxIdleTimeout)
	// MaxStatementTime bounds a request or statement of a database whose
	// configuration sets none (default DefaultMaxStatementTime).
	MaxStatementTime time.Duration
	// MaxSize bounds the size of a database whose configuration sets
	// none, in bytes (default DefaultMaxSize).
	MaxSize int64
	// SnapshotInterval is how often a database whose configuration sets
	// none gets a snapshot, if it changed (0: never).
	SnapshotInterval time.Duration
	// RetentionSnapshots and RetentionAge are the retention of databases
	// whose configuration sets none (defaults DefaultRetentionSnapshots
	// and DefaultRetentionAge; a negative age keeps every snapshot).
	RetentionSnapshots int
	RetentionAge       time.Duration
	// SnapshotCheck is how often the node looks for databases due a
	// scheduled snapshot (default DefaultSnapshotCheck).
	SnapshotCheck time.Duration

	counters counters
	health   writeHealth // see health.go

	mu  sync.Mutex
	dbs map[string]*entry

	// autoMaxOpen: MaxOpen was left to its default, which openBudget
	// (what the files the rest of the node holds leave, counted at
	// openBudgetAt, unix ns) may lower. countFiles counts the process's
	// open files (filesOpen unless a test says otherwise).
	autoMaxOpen  bool
	openBudget   atomic.Int64
	openBudgetAt atomic.Int64
	countFiles   func() int

	accountsMu sync.Mutex
	accounts   map[string]*natsAccount // by name (accounts.go)

	tailMu sync.Mutex
	tails  map[string]*tail // change feeds' shared tails, by database (tail.go)

	nodes     jetstream.KeyValue
	slot      int          // this node's slot (registry.NodeSlot): its eventual-mode rowid range
	others    atomic.Int64 // live nodes besides this one; see countOthers
	statusSub *nats.Subscription
	stopWatch func()
	// registryView: the registry watch's changes, for the snapshot
	// scheduler (snapshot_schedule.go).
	registryView registryView

	// Forward runs a clustered strong-mode database's write requests on
	// the node that leads its stream (forward.go).
	Forward    bool
	forwardSub *nats.Subscription
	forwarding atomic.Int64 // forwarded requests running here
	stopping   atomic.Bool  // Close has begun: forwarded requests are turned away
	replies    replies      // answers to this node's forwarded requests
	// Interactive transactions forwarded here, and this node's count of
	// those it forwards (remotetx.go).
	remoteTxSub *nats.Subscription
	remoteTxs   servedTxs
	remoteTxIDs atomic.Uint64

	stop chan struct{}
	wg   sync.WaitGroup
}

// entry is a database in the open set. ready is closed once db or err is
// set (db and err are read only after); refs counts users; a closing entry
// takes no new users.
type entry struct {
	ready    chan struct{}
	db       *DB
	err      error
	refs     int
	lastUsed time.Time
	closing  bool
	// changed is closed and replaced (under Engine.mu) whenever refs
	// drops or the entry leaves the open set: closeDB waits on it for the
	// last user, Acquire for a closing entry to go.
	changed chan struct{}
	// release is what Acquire returns: it gives back one reference.
	// Made once per entry, not per request.
	release func()
}

func (e *Engine) newEntry() *entry {
	ent := &entry{ready: make(chan struct{}), changed: make(chan struct{})}
	ent.release = func() {
		e.mu.Lock()
		ent.refs--
		ent.lastUsed = e.now()
		if ent.closing {
			ent.notify()
		}
		e.mu.Unlock()
	}
	return ent
}

// notify wakes those waiting on ent.changed. The caller holds e.mu.
func (ent *entry) notify() {
	close(ent.changed)
	ent.changed = make(chan struct{})
}

// remove takes ent out of the open set. The caller holds e.mu.
func (e *Engine) remove(name string, ent *entry) {
	if e.dbs[name] == ent {
		delete(e.dbs, name)
		ent.notify()
	}
}

// Open prepares the engine: data directories, the idle closer, the node's
// heartbeat and status responder, and the watch for deleted databases.
func (e *Engine) Open(ctx context.Context) error {
	if e.Logger == nil {
		e.Logger = slog.Default()
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Readers <= 0 {
		e.Readers = 4
	}
	if e.MaxOpen == 0 && !e.Memory {
		e.MaxOpen, e.autoMaxOpen = defaultMaxOpen(), true
	}
	if e.Replicas <= 0 {
		e.Replicas = 1
	}
	if !e.Memory {
		if err := os.MkdirAll(filepath.Join(e.DataDir, "db"), 0o700); err != nil {
			return err
		}
	}
	e.dbs = map[string]*entry{}
	e.stop = make(chan struct{})
	if e.IdleTimeout > 0 && !e.Memory {
		e.wg.Add(1)
		go e.closeIdle()
	}
	e.wg.Add(1)
	go e.scheduleSnapshots()
	if err := e.startCluster(ctx); err != nil {
		return err
	}
	go e.openQueued(context.Background())
	return nil
}

// Close closes every open database. Callers stop sending requests first.
func (e *Engine) Close() error {
	e.stopCluster()
	close(e.stop)
	e.wg.Wait()
	e.mu.Lock()
	var open []*DB
	for name, ent := range e.dbs {
		select {
		case <-ent.ready:
			if ent.db != nil {
				open = append(open, ent.db)
			}
		default:
		}
		e.remove(name, ent)
	}
	e.mu.Unlock()
	var first error
	for _, db := range open {
		if err := db.close(); err != nil && first == nil {
			first = err
		}
	}
	e.closeAccounts()
	return first
}

func (e *Engine) now() time.Time { return e.Now() }

// DefaultPublishTimeout is how long a write waits for JetStream's
// acknowledgement unless PublishTimeout says otherwise.
const DefaultPublishTimeout = 10 * time.Second

// DefaultMaxSize is how large a database may grow unless its
// configuration or MaxSize says otherwise.
const DefaultMaxSize = 10 << 30

// DefaultMaxStatementTime is how long a request (HTTP) or statement
// (pgwire) may run unless its database or MaxStatementTime says otherwise.
const DefaultMaxStatementTime = 30 * time.Second

// DefaultIdleTimeout is how long a node keeps a database open unused, as
// hasvc's default IdleTimeout.
const DefaultIdleTimeout = 5 * time.Minute

func (e *Engine) publishTimeout() time.Duration {
	if e.PublishTimeout > 0 {
		return e.PublishTimeout
	}
	return DefaultPublishTimeout
}

// maxMessage is the largest change message the connection can publish.
func (e *Engine) maxMessage() int {
	if e.NC != nil {
		if n := e.NC.MaxPayload(); n > 0 {
			return int(n) - 1024 // room for headers
		}
	}
	return 1 << 20
}

func (e *Engine) path(name string) string {
	return filepath.Join(e.DataDir, "db", name+".db")
}

// dsn is the SQLite URI of a database. In memory mode every connection of
// the process shares one in-memory database per name through the memdb VFS.
func (e *Engine) dsn(name string) string {
	if e.Memory {
		return "file:/hasvc-" + name + "?vfs=memdb"
	}
	return "file:" + e.path(name)
}

// closeDB closes the open copy of name, waiting for its users to finish.
func (e *Engine) closeDB(name string) {
	e.mu.Lock()
	ent, ok := e.dbs[name]
	if !ok {
		e.mu.Unlock()
		return
	}
	ent.closing = true
	e.mu.Unlock()
	<-ent.ready
	for {
		e.mu.Lock()
		if e.dbs[name] != ent {
			// Another closer took it out and closes it.
			e.mu.Unlock()
			return
		}
		if ent.refs == 0 {
			e.remove(name, ent)
			e.mu.Unlock()
			break
		}
		changed := ent.changed
		e.mu.Unlock()
		<-changed
	}
	if ent.db != nil {
		if err := ent.db.close(); err != nil {
			e.Logger.Error("close database", "db", name, "err", err)
		}
	}
}

// reserve takes name's place in the open set with an entry that is not
// ready, closing the copy that is open (waiting for its users) first.
// Until the caller closes ent.ready, nobody opens name: Acquire waits.
func (e *Engine) reserve(name string) *entry {
	for {
		e.mu.Lock()
		if _, open := e.dbs[name]; !open {
			ent := e.newEntry()
			e.dbs[name] = ent
			e.mu.Unlock()
			return ent
		}
		e.mu.Unlock()
		e.closeDB(name)
	}
}

// withFiles runs fn, which works on name's local files, while no copy of
// name is open and none can open: a file being made or removed is never
// opened half-way, nor removed under a copy in use. The caller holds no
// reference to name.
func (e *Engine) withFiles(name string, fn func() error) error {
	ent := e.reserve(name)
	err := fn()
	e.mu.Lock()
	e.remove(name, ent)
	close(ent.ready)
	e.mu.Unlock()
	return err
}

// Acquire returns the open copy of database name, opening it if needed,
// and a release function to call when done with it.
func (e *Engine) Acquire(ctx context.Context, name string) (*DB, func(), error) {
	if err := tenant.ValidateName(name); err != nil {
		return nil, nil, err
	}
	for {
		e.mu.Lock()
		ent, ok := e.dbs[name]
		if !ok {
			e.mu.Unlock()
			e.refreshOpenBudget()
			e.mu.Lock()
			if ent, ok = e.dbs[name]; ok {
				e.mu.Unlock()
				continue
			}
			closing, err := e.makeRoom()
			if err != nil {
				e.mu.Unlock()
				return nil, nil, err
			}
			ent = e.newEntry()
			e.dbs[name] = ent
			e.mu.Unlock()
			e.closeLater(closing)
			ent.db, ent.err = e.openDB(ctx, name)
			e.mu.Lock()
			if ent.err != nil {
				e.remove(name, ent)
			}
			close(ent.ready)
			e.mu.Unlock()
		} else {
			e.mu.Unlock()
		}
		select {
		case <-ent.ready:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		if ent.err != nil {
			return nil, nil, ent.err
		}
		e.mu.Lock()
		if ent.closing || e.dbs[name] != ent {
			// Being deleted or closed for idleness: wait until it is
			// gone, then look again (a deleted database is then not
			// found).
			changed := ent.changed
			gone := e.dbs[name] != ent
			e.mu.Unlock()
			if !gone {
				select {
				case <-changed:
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				}
			}
			continue
		}
		ent.refs++
		e.mu.Unlock()
		return ent.db, ent.release, nil
	}
}

// openDB opens the SQLite copy of a registered database and brings it up to
// date with its stream.
func (e *Engine) openDB(ctx context.Context, name string) (*DB, error) {
	cfg, err := e.Registry.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	stream, err := e.streamOf(ctx, cfg)
	if err != nil {
		return nil, err
	}
	acc, err := e.account(cfg.Account) // connected by streamOf
	if err != nil {
		return nil, err
	}
	// A strong-mode write group goes to a replicated stream as one atomic
	// batch: one round trip to a quorum instead of one per request. A
	// single-replica stream on disk would stage each batch in a file store
	// of its own, slower than its acknowledgements one at a time.
	sc := stream.CachedInfo().Config
	atomic := sc.AllowAtomicPublish && sc.Replicas > 1
	if !atomic && sc.Replicas > 1 {
		// A stream created before hasvc published groups as atomic
		// batches: allow them now, or go on one message at a time.
		sc.AllowAtomicPublish = true
		if _, err := acc.js.UpdateStream(ctx, sc); err == nil {
			atomic = true
		} else {
			e.Logger.Warn("stream does not take atomic batches; strong-mode writes publish one at a time", "db", name, "err", err)
		}
	}
	hold, err := e.bootFromSnapshot(ctx, cfg, stream)
	if err != nil {
		return nil, err
	}
	if hold != nil {
		defer hold.Close() // once the writer holds the in-memory copy
	}
	// The writer runs tenants' SQL in the sandbox and captures their
	// changes; hasvc's own SQL on it goes through Internal.
	w, err := sqlite.Open(e.dsn(name), sqlite.Options{Tenant: true, Capture: true})
	if err != nil {
		return nil, err
	}
	// A transaction's row images may not outgrow the message that must
	// carry them: capture stops the statement there.
	w.Capture().Limit = e.maxMessage()
	if err := w.SetMaxSize(e.sizeLimit(cfg)); err != nil {
		w.Close()
		return nil, err
	}
	if err := prepareFile(w); err != nil {
		w.Close()
		return nil, err
	}
	if cfg.Mode == tenant.ModeEventual {
		// Nodes commit eventual-mode inserts at once, each from its own
		// copy: their new rowids come from the node's own range, so no
		// two nodes give two rows the same one.
		if err := w.SetRowidRange(tenant.RowidRange(e.slot)); err != nil {
			w.Close()
			return nil, err
		}
	}
	var applied int64
	ahead := map[uint64]bool{}
	err = w.Internal(func() error {
		var err error
		if applied, err = w.QueryInt64("SELECT applied_seq FROM _hasvc_state"); err != nil {
			return err
		}
		return w.Query("SELECT seq FROM _hasvc_ahead", nil, func(s *sqlite.Stmt) error {
			seq, _ := s.Column(0).(int64)
			ahead[uint64(seq)] = true
			return nil
		})
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	d := &DB{
		name:       name,
		cfg:        cfg,
		eng:        e,
		nats:       acc,
		log:        e.Logger.With("db", name),
		stream:     stream,
		writer:     w,
		ops:        make(chan *op, maxBatch),
		readerSem:  make(chan struct{}, e.Readers),
		closed:     make(chan struct{}),
		writerDone: make(chan struct{}),
		ahead:      ahead,
		atomic:     atomic,
		texts:      newSQLTexts(defaultTexts),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.maxStatementTime.Store(int64(cfg.MaxStatementTime))
	d.setApplied(uint64(applied))
	if err := d.loadOutbox(); err != nil {
		w.Close()
		return nil, err
	}
	if err := d.catchUpTo(ctx, stream.CachedInfo().State); err != nil {
		d.log.Error("catch-up at open", "err", err)
	}
	// The writer is this goroutine's until loop starts.
	checkpointer := false
	if !e.Memory {
		if err := w.Internal(func() error { return w.Exec("PRAGMA wal_autocheckpoint = 0") }); err != nil {
			d.log.Warn("checkpoints stay on the writer", "err", err)
		} else {
			checkpointer = true
		}
	}
	d.wg.Add(2)
	go d.loop()
	go d.follow()
	if checkpointer {
		d.wg.Add(1)
		go d.checkpointer()
	}
	if err := d.do(ctx, func(*sqlite.Conn) error { d.startPublisher(); return nil }); err != nil {
		d.log.Error("start sending queued writes", "err", err)
	}
	return d, nil
}

// prepareFile sets the file-level pragmas and applies hasvc's migrations.
func prepareFile(c *sqlite.Conn) error {
	return c.Internal(func() error {
		mode, err := c.QueryText("PRAGMA journal_mode")
		if err != nil {
			return err
		}
		if mode != "memory" {
			// WAL lets readers run while the writer commits; NORMAL
			// syncs at checkpoints, and the stream is the durable log.
			if err := c.Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL"); err != nil {
				return err
			}
		}
		if err := c.Exec("CREATE TABLE IF NOT EXISTS _hasvc_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"); err != nil {
			return err
		}
		all, err := migrations.All()
		if err != nil {
			return err
		}
		for _, m := range all {
			n, err := c.QueryInt64("SELECT count(*) FROM _hasvc_migrations WHERE version = ?", int64(m.Version))
			if err != nil {
				return err
			}
			if n > 0 {
				continue
			}
			err = c.Exec("BEGIN IMMEDIATE")
			if err == nil {
				err = c.Exec(m.SQL)
			}
			if err == nil {
				err = c.Exec("INSERT INTO _hasvc_migrations (version, name) VALUES (?, ?)", int64(m.Version), m.Name)
			}
			if err == nil {
				err = c.Exec("COMMIT")
			}
			if err != nil {
				c.Exec("ROLLBACK")
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
}

// Info describes a database for its owner.
type Info struct {
	tenant.Config
	SizeBytes int64 `json:"size_bytes"`
	// SizeLimitBytes is the size the database may grow to: its max_size,
	// or the node's default.
	SizeLimitBytes int64  `json:"size_limit_bytes"`
	StreamSeq      uint64 `json:"stream_seq"`
	// StreamFirstSeq is the oldest message the stream keeps (retention
	// trims the ones before the oldest kept snapshot).
	StreamFirstSeq uint64 `json:"stream_first_seq"`
	StreamBytes    uint64 `json:"stream_bytes"`
	StreamSubject  string `json:"stream_subject"`
	StreamName     string `json:"stream_name"`
	SnapshotsName  string `json:"snapshot_bucket"`
	// StreamLeader is the node that leads the stream: in a cluster, a
	// strong-mode database's writes run there (forward.go).
	StreamLeader string     `json:"stream_leader,omitempty"`
	Nodes        []NodeInfo `json:"nodes"`
}

// NodeInfo is one node's view of a database.
type NodeInfo struct {
	Node       string `json:"node"`
	Open       bool   `json:"open"` // the copy is open (and following the stream)
	AppliedSeq uint64 `json:"applied_seq"`
	Lag        uint64 `json:"lag"`
	Stuck      string `json:"stuck,omitempty"`
	// QueuedWrites: eventual-mode writes committed on this node that
	// wait for the stream to be reachable (outbox.go).
	QueuedWrites int64 `json:"queued_writes,omitempty"`
	// Replication lag (capture on the writing node to commit here) of the
	// last messages applied from other nodes, in milliseconds.
	LagP50ms float64 `json:"replication_lag_p50_ms,omitempty"`
	LagP99ms float64 `json:"replication_lag_p99_ms,omitempty"`
	LagCount int     `json:"replication_lag_samples,omitempty"`
}

// Info returns the configuration and state of database name.
func (e *Engine) Info(ctx context.Context, name string) (*Info, error) {
	db, release, err := e.Acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	defer release()
	cfg, err := e.Registry.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	info := &Info{
		Config:         cfg,
		SizeLimitBytes: e.sizeLimit(cfg),
		StreamName:     tenant.StreamName(name),
		StreamSubject:  tenant.Subject(name),
		SnapshotsName:  tenant.BucketName(name),
	}
	si, err := db.stream.Info(ctx)
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "stream info: "+err.Error())
	}
	info.StreamSeq = si.State.LastSeq
	info.StreamBytes = si.State.Bytes
	info.StreamFirstSeq = si.State.FirstSeq
	if si.Cluster != nil {
		info.StreamLeader = si.Cluster.Leader
	}
	if e.Memory {
		size, err := db.sizeBytes(ctx)
		if err != nil {
			return nil, err
		}
		info.SizeBytes = size
	} else {
		for _, suffix := range []string{"", "-wal"} {
			if st, err := os.Stat(e.path(name) + suffix); err == nil {
				info.SizeBytes += st.Size()
			}
		}
	}
	info.Nodes, err = e.nodeViews(ctx, name, info.StreamSeq)
	if err != nil {
		return nil, err
	}
	return info, nil
}

// Created returns when database name was created (ENOTFOUND).
func (e *Engine) Created(ctx context.Context, name string) (time.Time, error) {
	db, release, err := e.Acquire(ctx, name)
	if err != nil {
		return time.Time{}, err
	}
	defer release()
	return db.CreatedAt(), nil
}

// List returns every database's configuration.
func (e *Engine) List(ctx context.Context) ([]tenant.Config, error) {
	return e.Registry.List(ctx)
}

// Exec runs a request on database name; see DB.Exec.
func (e *Engine) Exec(ctx context.Context, name string, stmts []sqlite.Statement, opts ExecOptions) (*ExecResult, error) {
	db, release, err := e.Acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	defer release()
	return db.Exec(ctx, stmts, opts)
}

// Backup makes a consistent copy of database name for its tenant (see
// DB.Backup): the tenant's tables only, without hasvc's bookkeeping.
func (e *Engine) Backup(ctx context.Context, name string) (*BackupFile, error) {
	db, release, err := e.Acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	defer release()
	f, err := db.Backup(ctx)
	if err != nil {
		return nil, err
	}
	if err := f.stripHasvc(); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
