package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime/cgo"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Conn is one SQLite connection: the writer of a database, one of its
// readers, or a short-lived connection for backups and imports. A Conn is
// used by one goroutine at a time.
type Conn struct {
	sc  *sqlite3.SQLiteConn
	raw rawConn

	// tenant switches the authorizer to tenants' rules. hasvc's own SQL
	// (bookkeeping, savepoints, apply) runs with tenant == false.
	tenant bool
	// ddl is set by the authorizer while preparing a statement that changes
	// the schema.
	ddl bool
	// refused is what the authorizer last refused while preparing, said
	// for the tenant ("ATTACH is not allowed ...").
	refused string
	// created and selected: the statement being prepared creates table
	// created and reads with a SELECT: CREATE TABLE ... AS SELECT.
	created  string
	selected bool
	// readsSchema: the statement being prepared reads a schema table,
	// which tenants see without hasvc's rows (see schemaview.go).
	readsSchema bool
	// inserts: the statement being prepared inserts rows into a table.
	inserts bool
	// rowids, if set, is where the rowids of the tenant's inserts come
	// from (rowids.go).
	rowids *rowidRange

	// Prepared statements by SQL text, one cache per sandbox mode: a
	// statement prepared for hasvc's own SQL never serves a tenant.
	cache  map[string]*Stmt
	icache map[string]*Stmt

	tables map[string]*TableInfo // see tableInfo
	ddlRan bool                  // a schema change ran in the current transaction
	// schemaVersion is PRAGMA schema_version as FollowSchema last read it.
	schemaVersion int64

	// watched and deadline stop the statements that run on c: SQLite's
	// progress handler (callbacks.go) interrupts a statement once watched
	// is done or deadline has passed. Only the goroutine using c sets or
	// reads them (the handler runs inside its sqlite3_step).
	watched  context.Context
	deadline time.Time

	capture *Capture // non-nil on a writer

	// handle stands for the connection in SQLite's callbacks into Go
	// (callbacks.go).
	handle cgo.Handle

	// maxSize bounds the database file on this connection (SetMaxSize);
	// maxPages is the same in pages (0: no limit).
	maxSize  int64
	maxPages int64
}

const stmtCacheSize = 256

// Open opens a SQLite connection to dsn and sets it up. Every pragma
// here is per connection.
// Options say what a connection is for.
type Options struct {
	// ReadOnly: a reader; SQLite refuses every write on it.
	ReadOnly bool
	// Tenant: statements run in the tenant sandbox unless wrapped in
	// Internal. Off, they run as hasvc's own.
	Tenant bool
	// Capture: the writer; row changes made by Run with the connection's
	// Capture are captured (see Capture).
	Capture bool
	// Functions: the connection takes Go functions (RegisterFunc). It is
	// opened through mattn's driver, whose registration converts Go values;
	// every other connection is opened directly, without the functions and
	// bookkeeping the driver adds to each (callbacks.go says what that
	// costs).
	Functions bool
}

func Open(dsn string, opts Options) (*Conn, error) {
	configureSQLite()
	c := &Conn{cache: map[string]*Stmt{}, icache: map[string]*Stmt{}}
	if opts.Functions {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dc, err := (&sqlite3.SQLiteDriver{}).Open(dsn + sep + "_mutex=no")
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", dsn, err)
		}
		c.sc = dc.(*sqlite3.SQLiteConn)
		c.raw = handleOf(c.sc)
	} else {
		raw, err := openRaw(dsn)
		if err != nil {
			return nil, err
		}
		c.raw = raw
	}
	c.handle = cgo.NewHandle(c)
	if opts.Capture {
		c.capture = &Capture{raw: c.raw}
	}
	if err := c.raw.setCallbacks(c.handle, opts.Capture); err != nil {
		c.Close()
		return nil, err
	}
	// Defensive mode forbids writable_schema and other ways to corrupt
	// the file from SQL; untrusted schema keeps functions with side effects
	// out of views and triggers.
	if err := c.raw.dbConfig(dbconfigDefensive, true); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.raw.dbConfig(dbconfigTrustedSchema, false); err != nil {
		c.Close()
		return nil, err
	}
	// Bound what a tenant statement can build in memory.
	c.raw.setLimit(limitLength, 64<<20)
	c.raw.setLimit(limitSQLLength, 8<<20)
	pragmas := []string{
		// Tenants expect foreign keys to be enforced; apply turns them off.
		"PRAGMA foreign_keys = ON",
		// Read the file through a memory map: a page that is not in this
		// connection's own cache comes from the kernel's page cache without
		// a read system call (a point select on a table larger than the
		// cache otherwise costs one or more preads). Address space only;
		// the kernel shares the pages between connections.
		"PRAGMA mmap_size = 268435456",
	}
	if opts.ReadOnly {
		// A reader never writes; SQLite refuses it even if a bug asked.
		pragmas = append(pragmas, "PRAGMA query_only = ON")
	} else {
		// In WAL mode, sync at checkpoints only: the stream is the
		// durable log (the writer says so again in prepareFile).
		pragmas = append(pragmas, "PRAGMA synchronous = NORMAL")
	}
	for _, p := range pragmas {
		if err := c.Exec(p); err != nil {
			c.Close()
			return nil, err
		}
	}
	c.tenant = opts.Tenant
	return c, nil
}

// Capture returns the capture of a connection opened with Options.Capture,
// else nil.
func (c *Conn) Capture() *Capture { return c.capture }

// Autocommit reports whether no transaction is open: after an error, false
// means SQLite rolled the whole transaction back (I/O error, out of
// memory), not only the statement.
func (c *Conn) Autocommit() bool { return c.raw.autocommit() }

// TxDone tells the connection that its transaction ended (committed or
// rolled back; call RolledBack first for a rollback).
func (c *Conn) TxDone() {
	c.ddlRan = false
	c.forgetRowids()
}

// CopyFrom replaces c's database with src's, page by page (SQLite's
// backup API): how a snapshot file becomes an in-memory database.
func (c *Conn) CopyFrom(src *Conn) error { return c.raw.copyFrom(src.raw) }

// RegisterFunc makes the Go function impl callable from SQL on c as name
// (go-sqlite3's rules for argument and result types). For connections of
// hasvc's own: a tenant's database must not depend on functions other
// copies or tools do not have.
func (c *Conn) RegisterFunc(name string, impl any, pure bool) error {
	if c.sc == nil {
		return errors.New("RegisterFunc on a connection opened without Options.Functions")
	}
	return c.sc.RegisterFunc(name, impl, pure)
}

func (c *Conn) Close() error {
	for _, m := range []map[string]*Stmt{c.cache, c.icache} {
		for k, s := range m {
			s.finalize()
			delete(m, k)
		}
	}
	var err error
	if c.sc != nil {
		err = c.sc.Close()
	} else if c.raw.db != nil {
		err = c.raw.close()
	}
	c.raw.db = nil
	if c.handle != 0 {
		c.handle.Delete() // SQLite calls back no more
		c.handle = 0
	}
	return err
}

// prepare returns the prepared statement for the first statement in sql
// starting at byte off, and the number of bytes it used. Statements are
// cached by their text; a cached one is reset before it is returned. A nil
// stmt means only whitespace or comments were left.
func (c *Conn) prepare(sql string, off int) (*Stmt, int, error) {
	cache := c.icache
	if c.tenant {
		cache = c.cache
	}
	if off == 0 {
		if s, ok := cache[sql]; ok && !s.inUse {
			s.inUse = true
			return s, len(sql), nil
		}
	}
	if off == 0 {
		// SQLite ends the text at a NUL byte and would consume nothing
		// there: refuse it rather than loop on it.
		if i := strings.IndexByte(sql, 0); i >= 0 {
			return nil, 0, statementError(KindSyntax, fmt.Sprintf("the SQL text holds a NUL byte at offset %d", i))
		}
	}
	st, used, err := c.prepareRaw(sql, off)
	if err != nil {
		return nil, 0, err
	}
	var names []string // column names, if the statement was prepared again
	if st != nil && c.tenant && c.readsSchema && !c.ddl {
		// A tenant's read of the schema table: prepare it again with
		// hasvc's rows left out (schemaview.go).
		if renamed, ok := renameSchemaTables(sql[off : off+used]); ok {
			// Columns keep the names the tenant's text gives them: an
			// expression's column is named by its text.
			orig := &Stmt{st: st}
			orig.describe()
			names = orig.names
			orig.finalize()
			if st, _, err = c.prepareRaw(renamed, 0); err != nil {
				return nil, 0, err
			}
		}
	}
	if st != nil && c.tenant && c.inserts && c.rowids != nil && !c.ddl {
		// An insert on a writer with a rowid range: prepare it again with
		// the rowids from the range (rowids.go). If the rewrite does not
		// prepare, the statement runs as written.
		if rewritten, ok := rewriteInsert(sql[off:off+used], c.insertTarget); ok {
			if st2, _, err := c.prepareRaw(rewritten, 0); err == nil && st2 != nil {
				(&Stmt{st: st}).finalize()
				st = st2
			}
		}
	}
	if strings.TrimSpace(sql[off+used:]) == "" {
		used = len(sql) - off // a statement followed by white space only is the whole text
	}
	if st == nil {
		if used == 0 {
			// Every caller advances by used: nothing consumed and nothing
			// prepared would never end.
			return nil, 0, statementError(KindSyntax, fmt.Sprintf("cannot parse the SQL text at offset %d", off))
		}
		return nil, used, nil
	}
	text := sql[off : off+used]
	s := &Stmt{st: st, raw: c.raw, sql: strings.TrimSpace(text), ddl: c.ddl, inUse: true}
	if c.created != "" && c.selected {
		s.ctas = c.created
	}
	s.ownNames = names
	s.describe()
	// Only a statement that is the whole text is cached: the key must
	// identify it alone.
	if _, taken := cache[sql]; off == 0 && used == len(sql) && !taken {
		if len(cache) >= stmtCacheSize {
			for k, old := range cache {
				if !old.inUse {
					old.finalize()
					delete(cache, k)
				}
			}
		}
		s.cached = true
		cache[sql] = s
	}
	return s, used, nil
}

// forgetStatements finalizes the tenant's cached statements not in use
// (one in use is finalized when it is released).
func (c *Conn) forgetStatements() {
	for k, s := range c.cache {
		delete(c.cache, k)
		if s.inUse {
			s.cached = false
		} else {
			s.finalize()
		}
	}
}

// Release returns a statement to the cache, or finalizes it if it is not
// cached.
func (c *Conn) Release(s *Stmt) {
	s.inUse = false
	if s.cached {
		s.reset()
		return
	}
	s.finalize()
}

// Exec runs every statement in sql with args bound to the first, for
// hasvc's own SQL. It discards rows.
func (c *Conn) Exec(sql string, args ...any) error {
	off := 0
	for off < len(sql) {
		s, used, err := c.prepare(sql, off)
		if err != nil {
			return fmt.Errorf("%s: %w", strings.TrimSpace(sql[off:]), err)
		}
		off += used
		if s == nil {
			continue
		}
		if off-used == 0 {
			for i, a := range args {
				if err := s.bind(i+1, a); err != nil {
					c.Release(s)
					return err
				}
			}
		}
		for {
			more, err := s.step()
			if err != nil {
				c.Release(s)
				return fmt.Errorf("%s: %w", s.sql, err)
			}
			if !more {
				break
			}
		}
		c.Release(s)
	}
	return nil
}

// QueryInt64 runs a one-row, one-column query of hasvc's own.
func (c *Conn) QueryInt64(sql string, args ...any) (int64, error) {
	var out int64
	err := c.Query(sql, args, func(s *Stmt) error {
		v, ok := s.Column(0).(int64)
		if !ok {
			return fmt.Errorf("%s: not an integer", sql)
		}
		out = v
		return nil
	})
	return out, err
}

// Query runs one statement of hasvc's own and calls fn for each row.
func (c *Conn) Query(sql string, args []any, fn func(*Stmt) error) error {
	s, _, err := c.prepare(sql, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	if s == nil {
		return nil
	}
	defer c.Release(s)
	for i, a := range args {
		if err := s.bind(i+1, a); err != nil {
			return err
		}
	}
	for {
		more, err := s.step()
		if err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		if !more {
			return nil
		}
		if err := fn(s); err != nil {
			return err
		}
	}
}

// Watch makes SQLite stop the statements that run on c once ctx is done,
// until Unwatch is given what Watch returned. Nothing waits on ctx: the
// progress handler looks at it every HASVC_PROGRESS_OPS virtual machine
// instructions (sqlite.go), so a statement started after ctx is done
// stops too.
func (c *Conn) Watch(ctx context.Context) (prev context.Context) {
	prev, c.watched = c.watched, ctx
	return prev
}

// Unwatch undoes a Watch.
func (c *Conn) Unwatch(prev context.Context) { c.watched = prev }

// SetDeadline makes SQLite stop the statements that run on c once t has
// passed (the zero time: no deadline), as a context's deadline would,
// without a timer.
func (c *Conn) SetDeadline(t time.Time) { c.deadline = t }

// interrupted reports whether the statement running on c is to stop
// (SQLite's progress handler asks).
func (c *Conn) interrupted() bool {
	if c.watched != nil {
		select {
		case <-c.watched.Done():
			return true
		default:
		}
	}
	return c.pastDeadline()
}

// pastDeadline reports whether c has a deadline and it has passed.
func (c *Conn) pastDeadline() bool {
	return !c.deadline.IsZero() && !time.Now().Before(c.deadline)
}

var _ driver.Conn = (*sqlite3.SQLiteConn)(nil)

// QueryText runs a one-row, one-column query of hasvc's own.
func (c *Conn) QueryText(sql string, args ...any) (string, error) {
	var out string
	err := c.Query(sql, args, func(s *Stmt) error {
		v, ok := s.Column(0).(string)
		if !ok {
			return fmt.Errorf("%s: not text", sql)
		}
		out = v
		return nil
	})
	return out, err
}

// SetMaxSize bounds what tenants' writes on c may grow the database to
// (0: no limit): SQLite refuses a write that needs more pages, and the
// statement fails with ETOOLARGE (KindQuota). Apply mode lifts the bound:
// a copy must apply every message the stream holds.
func (c *Conn) SetMaxSize(bytes int64) error {
	pageSize, err := c.pageSize()
	if err != nil {
		return err
	}
	c.maxSize, c.maxPages = bytes, 0
	if bytes > 0 {
		c.maxPages = max(1, bytes/pageSize)
	}
	return c.applyMaxPages(c.maxPages)
}

func (c *Conn) pageSize() (int64, error) {
	var n int64
	err := c.Internal(func() error {
		var err error
		n, err = c.QueryInt64("PRAGMA page_size")
		return err
	})
	return n, err
}

// noPageLimit is SQLite's largest max_page_count.
const noPageLimit = 4294967294

// applyMaxPages sets max_page_count (0: none). SQLite keeps it at least the
// current page count.
func (c *Conn) applyMaxPages(pages int64) error {
	if pages <= 0 {
		pages = noPageLimit
	}
	return c.Internal(func() error { return c.Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)) })
}
