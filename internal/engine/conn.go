package engine

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync"

	"github.com/mattn/go-sqlite3"
)

// conn is one SQLite connection: the writer of a database, one of its
// readers, or a short-lived connection for backups and imports. A conn is
// used by one goroutine at a time.
type conn struct {
	sc  *sqlite3.SQLiteConn
	raw rawConn

	// tenant switches the authorizer to tenants' rules. hasvc's own SQL
	// (bookkeeping, savepoints, apply) runs with tenant == false.
	tenant bool
	// ddl is set by the authorizer while preparing a statement that changes
	// the schema.
	ddl bool

	// Prepared statements by SQL text, one cache per sandbox mode: a
	// statement prepared for hasvc's own SQL never serves a tenant.
	cache  map[string]*stmt
	icache map[string]*stmt

	tables map[string]*tableInfo // see tableInfo
	ddlRan bool                  // a schema change ran in the current transaction

	// intr guards interrupts from a context watcher against the statement
	// that follows the one it meant to stop.
	intrMu     sync.Mutex
	intrActive bool

	capture *capture // non-nil on a writer
}

const stmtCacheSize = 256

// openConn opens a SQLite connection to dsn and sets it up. Every pragma
// here is per connection.
func openConn(dsn string, readonly bool) (*conn, error) {
	configureSQLite()
	// A conn is used by one goroutine at a time, so SQLite's own
	// per-connection mutex is not needed.
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	dc, err := (&sqlite3.SQLiteDriver{}).Open(dsn + sep + "_mutex=no")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dsn, err)
	}
	sc := dc.(*sqlite3.SQLiteConn)
	c := &conn{sc: sc, raw: handleOf(sc), cache: map[string]*stmt{}, icache: map[string]*stmt{}}
	sc.RegisterAuthorizer(c.authorize)
	// Defensive mode forbids writable_schema and other ways to corrupt
	// the file from SQL; untrusted schema keeps functions with side effects
	// out of views and triggers.
	if err := c.raw.dbConfig(dbconfigDefensive, true); err != nil {
		c.close()
		return nil, err
	}
	if err := c.raw.dbConfig(dbconfigTrustedSchema, false); err != nil {
		c.close()
		return nil, err
	}
	// Bound what a tenant statement can build in memory.
	c.raw.setLimit(limitLength, 64<<20)
	c.raw.setLimit(limitSQLLength, 8<<20)
	pragmas := []string{
		// Readers and the writer wait for each other instead of failing at
		// once; in WAL mode that only happens at checkpoints.
		"PRAGMA busy_timeout = 5000",
		// Tenants expect foreign keys to be enforced; apply turns them off.
		"PRAGMA foreign_keys = ON",
		// Read the file through a memory map: a page that is not in this
		// connection's own cache comes from the kernel's page cache without
		// a read system call (a point select on a table larger than the
		// cache otherwise costs one or more preads). Address space only;
		// the kernel shares the pages between connections.
		"PRAGMA mmap_size = 268435456",
	}
	if readonly {
		// A reader never writes; SQLite refuses it even if a bug asked.
		pragmas = append(pragmas, "PRAGMA query_only = ON")
	}
	for _, p := range pragmas {
		if err := c.exec(p); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

func (c *conn) close() error {
	for _, m := range []map[string]*stmt{c.cache, c.icache} {
		for k, s := range m {
			s.finalize()
			delete(m, k)
		}
	}
	return c.sc.Close()
}

// prepare returns the prepared statement for the first statement in sql
// starting at byte off, and the number of bytes it used. Statements are
// cached by their text; a cached one is reset before it is returned. A nil
// stmt means only whitespace or comments were left.
func (c *conn) prepare(sql string, off int) (*stmt, int, error) {
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
	c.ddl = false
	st, used, err := c.raw.prepare(sql, off)
	if err != nil {
		return nil, 0, err
	}
	if strings.TrimSpace(sql[off+used:]) == "" {
		used = len(sql) - off // a statement followed by white space only is the whole text
	}
	if st == nil {
		return nil, used, nil
	}
	text := sql[off : off+used]
	s := &stmt{st: st, raw: c.raw, sql: strings.TrimSpace(text), ddl: c.ddl, inUse: true}
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

// release returns a statement to the cache, or finalizes it if it is not
// cached.
func (c *conn) release(s *stmt) {
	s.inUse = false
	if s.cached {
		s.reset()
		return
	}
	s.finalize()
}

// exec runs every statement in sql with args bound to the first, for
// hasvc's own SQL. It discards rows.
func (c *conn) exec(sql string, args ...any) error {
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
					c.release(s)
					return err
				}
			}
		}
		for {
			more, err := s.step()
			if err != nil {
				c.release(s)
				return fmt.Errorf("%s: %w", s.sql, err)
			}
			if !more {
				break
			}
		}
		c.release(s)
	}
	return nil
}

// queryInt64 runs a one-row, one-column query of hasvc's own.
func (c *conn) queryInt64(sql string, args ...any) (int64, error) {
	var out int64
	err := c.query(sql, args, func(s *stmt) error {
		v, ok := s.column(0).(int64)
		if !ok {
			return fmt.Errorf("%s: not an integer", sql)
		}
		out = v
		return nil
	})
	return out, err
}

// query runs one statement of hasvc's own and calls fn for each row.
func (c *conn) query(sql string, args []any, fn func(*stmt) error) error {
	s, _, err := c.prepare(sql, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	if s == nil {
		return nil
	}
	defer c.release(s)
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

// watch interrupts the statements running on c when ctx is done, until the
// returned stop is called.
func (c *conn) watch(ctx context.Context) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	c.intrMu.Lock()
	c.intrActive = true
	c.intrMu.Unlock()
	cancel := context.AfterFunc(ctx, func() {
		c.intrMu.Lock()
		if c.intrActive {
			c.raw.interrupt()
		}
		c.intrMu.Unlock()
	})
	return func() {
		cancel()
		c.intrMu.Lock()
		c.intrActive = false
		c.intrMu.Unlock()
	}
}

var _ driver.Conn = (*sqlite3.SQLiteConn)(nil)

// queryText runs a one-row, one-column query of hasvc's own.
func (c *conn) queryText(sql string, args ...any) (string, error) {
	var out string
	err := c.query(sql, args, func(s *stmt) error {
		v, ok := s.column(0).(string)
		if !ok {
			return fmt.Errorf("%s: not text", sql)
		}
		out = v
		return nil
	})
	return out, err
}
