// Package pg is hasvc's PostgreSQL wire protocol (v3) server: the startup
// message's database picks the tenant, the password carries a JWT, and
// statements run on the SQLite engine with PostgreSQL's result types,
// transaction states and SQLSTATEs.
package pg

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"hasvc/internal/auth"
	"hasvc/internal/engine"
	"hasvc/internal/tenant"
)

// Databases is what the wire server needs of the engine.
type Databases interface {
	// Acquire returns the open copy of a database and a release function;
	// ENOTFOUND for an unknown database, EUNAVAILABLE when it cannot be
	// opened.
	Acquire(ctx context.Context, name string) (*engine.DB, func(), error)
	// List returns every database's configuration (for \l);
	// EUNAVAILABLE when the registry is.
	List(ctx context.Context) ([]tenant.Config, error)
}

// Verifier checks tokens.
type Verifier interface {
	// Verify returns EUNAUTHORIZED for a bad, expired or foreign token.
	Verify(token string) (*auth.Principal, error)
	// Generation changes when the keys do: a session verifies its token
	// again then (revocations reach it through Server.Revoke).
	Generation() uint64
}

// Server serves PostgreSQL clients.
type Server struct {
	DB     Databases
	Auth   Verifier
	Logger *slog.Logger
	// TLS, if set, answers SSLRequest with TLS.
	TLS *tls.Config
	// AllowCleartext accepts passwords over unencrypted connections from
	// any address; without it only loopback clients may send one.
	AllowCleartext bool
	MaxConns       int // authenticated sessions served at once (default 100)
	MaxStarting    int // connections not yet authenticated at once (default 32)
	// Concurrency bounds the sessions a database and a token hold at
	// once (nil: no bound beyond MaxConns).
	Concurrency   *tenant.Concurrency
	IdleTimeout   time.Duration    // close a connection idle outside a transaction this long (0: never)
	TxIdleTimeout time.Duration    // close a connection idle this long in a transaction block that only reads (0: never)
	Now           func() time.Time // the clock tokens expire by (default time.Now)
	MaxMessage    int              // largest message a client may send, bytes (default 16 MiB)
	Version       string           // SQLite's version, for version()

	mu       sync.Mutex
	ln       net.Listener
	sessions map[uint32]*session // by process id, for cancel requests
	conns    map[net.Conn]bool
	closed   bool
	wg       sync.WaitGroup

	// starting holds a token for each connection in its startup.
	starting chan struct{}

	// ctx is the parent of every statement's context: Close cancels it,
	// interrupting the statements that run.
	ctx    context.Context
	stopFn context.CancelFunc
}

// Defaults of the server's limits.
const (
	// DefaultMaxConns is how many sessions a server serves at once.
	DefaultMaxConns = 100
	// DefaultIdleTimeout is hasvc's default IdleTimeout.
	DefaultIdleTimeout = time.Hour

	// DefaultMaxStarting is how many connections may be in their startup
	// (before the password is checked) at once: they do not count
	// against MaxConns, so clients that never authenticate cannot take
	// the slots of those that do.
	DefaultMaxStarting = 32

	defaultMaxMessage = 16 << 20
	// startupTimeout bounds a connection's startup, password included.
	startupTimeout = 10 * time.Second
)

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.ln = ln
	s.ctx, s.stopFn = context.WithCancel(context.Background())
	maxStarting := s.MaxStarting
	if maxStarting <= 0 {
		maxStarting = DefaultMaxStarting
	}
	s.starting = make(chan struct{}, maxStarting)
	s.sessions = map[uint32]*session{}
	s.conns = map[net.Conn]bool{}
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops accepting, closes every connection (rolling back open
// transactions) and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	var err error
	if s.ln != nil {
		err = s.ln.Close()
		s.stopFn()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) maxConns() int {
	if s.MaxConns > 0 {
		return s.MaxConns
	}
	return DefaultMaxConns
}

func (s *Server) maxMessage() int {
	if s.MaxMessage > 0 {
		return s.MaxMessage
	}
	return defaultMaxMessage
}

// Connections returns the number of client sessions open now.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// register gives a session its process id and secret key; false if the
// server is at its connection limit.
func (s *Server) register(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) >= s.maxConns() {
		return false
	}
	var b [8]byte
	for {
		rand.Read(b[:])
		pid := binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
		if _, taken := s.sessions[pid]; pid != 0 && !taken {
			ss.pid, ss.secret = pid, binary.BigEndian.Uint32(b[4:])
			s.sessions[pid] = ss
			return true
		}
	}
}

func (s *Server) unregister(ss *session) {
	if ss.releaseSlot != nil {
		ss.releaseSlot()
	}
	if ss.scratch != nil {
		ss.scratch.Close()
	}
	s.mu.Lock()
	if s.sessions[ss.pid] == ss {
		delete(s.sessions, ss.pid)
	}
	s.mu.Unlock()
}

// cancel cancels the running statement of the session with this key.
func (s *Server) cancel(pid uint32, secret []byte) {
	s.mu.Lock()
	ss := s.sessions[pid]
	s.mu.Unlock()
	if ss == nil || len(secret) != 4 || binary.BigEndian.Uint32(secret) != ss.secret {
		return
	}
	ss.cancelRunning()
}

// Revoke ends the sessions opened with token id: at once if idle, else
// before their next message.
func (s *Server) Revoke(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.sessions {
		if ss.principal != nil && ss.principal.ID == id {
			ss.revoked.Store(true)
			ss.conn.SetReadDeadline(time.Now())
		}
	}
}
