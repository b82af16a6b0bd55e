package pg

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"hasvc/internal/auth"
	"hasvc/internal/tenant"
)

// Request codes of the messages that may open a connection.
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
	codeCancelRequest = 80877102
	maxStartupPacket  = 10000
)

// serveConn runs one client connection from its first byte to its end.
func (s *Server) serveConn(c net.Conn) {
	defer c.Close()
	defer func() {
		// A bug in one session ends that connection, not the node (its
		// transaction, if any, was rolled back by the session's own
		// deferred cleanup).
		if r := recover(); r != nil {
			s.Logger.Error("pg session panicked", "remote", c.RemoteAddr(), "panic", r, "stack", string(debug.Stack()))
		}
	}()
	// s.starting is nil only for a server not started by Serve (tests
	// of the startup itself): no budget then.
	if s.starting != nil {
		select {
		case s.starting <- struct{}{}:
		default:
			be := pgproto3.NewBackend(c, c)
			be.Send(errorResponse(fatalf(stateTooManyConnections, "sorry, too many clients are connecting at once; try again")))
			be.Flush()
			return
		}
	}
	started := s.starting == nil
	startDone := func() {
		if !started {
			started = true
			<-s.starting
		}
	}
	defer startDone()
	c.SetDeadline(time.Now().Add(startupTimeout))
	conn, params, err := s.negotiate(c)
	if err != nil || params == nil {
		if err != nil && err != io.EOF {
			s.Logger.Debug("pg startup", "remote", c.RemoteAddr(), "err", err)
		}
		return
	}
	ss := &session{
		srv:      s,
		conn:     conn,
		startup:  params,
		settings: map[string]string{},
		stmts:    map[string]*prepared{},
		portals:  map[string]*portal{},
	}
	ss.be = pgproto3.NewBackend(sessionReader{ss}, conn)
	ss.be.SetMaxBodyLen(s.maxMessage())
	defer s.unregister(ss)
	if err := ss.authenticate(conn != c); err != nil {
		ss.fatal(err)
		return
	}
	startDone()
	c.SetDeadline(time.Time{})
	stopWatch := ss.watchDisconnect(c)
	defer stopWatch()
	ss.loop()
}

// negotiate reads the messages that open a connection: SSLRequest (answered
// with TLS when configured), GSSENCRequest (refused), CancelRequest (acted
// on; the connection then closes) and the StartupMessage, whose parameters
// it returns. A client asking for a newer protocol minor version, or for
// protocol options, gets NegotiateProtocolVersion: hasvc speaks 3.0.
func (s *Server) negotiate(c net.Conn) (net.Conn, map[string]string, error) {
	conn := c
	tlsDone := false
	for {
		var head [4]byte
		if _, err := io.ReadFull(conn, head[:]); err != nil {
			return nil, nil, err
		}
		n := int(binary.BigEndian.Uint32(head[:]))
		if n < 8 || n > maxStartupPacket {
			return nil, nil, fmt.Errorf("invalid startup packet length %d", n)
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(conn, body); err != nil {
			return nil, nil, err
		}
		code := binary.BigEndian.Uint32(body)
		switch code {
		case codeSSLRequest:
			if s.TLS == nil || tlsDone {
				if _, err := conn.Write([]byte{'N'}); err != nil {
					return nil, nil, err
				}
				continue
			}
			if _, err := conn.Write([]byte{'S'}); err != nil {
				return nil, nil, err
			}
			tc := tls.Server(conn, s.TLS)
			if err := tc.Handshake(); err != nil {
				return nil, nil, err
			}
			conn, tlsDone = tc, true
		case codeGSSENCRequest:
			if _, err := conn.Write([]byte{'N'}); err != nil {
				return nil, nil, err
			}
		case codeCancelRequest:
			if len(body) >= 12 {
				s.cancel(binary.BigEndian.Uint32(body[4:]), body[8:])
			}
			return nil, nil, nil
		default:
			if code>>16 != 3 {
				be := pgproto3.NewBackend(conn, conn)
				be.Send(errorResponse(fatalf(stateProtocolViolation, "unsupported frontend protocol %d.%d: server supports 3.0", code>>16, code&0xffff)))
				be.Flush()
				return nil, nil, fmt.Errorf("protocol %d.%d", code>>16, code&0xffff)
			}
			params, unknown := startupParams(body[4:])
			if code&0xffff != 0 || len(unknown) > 0 {
				be := pgproto3.NewBackend(conn, conn)
				be.Send(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknown})
				if err := be.Flush(); err != nil {
					return nil, nil, err
				}
			}
			return conn, params, nil
		}
	}
}

// startupParams reads the name/value pairs of a StartupMessage; protocol
// options (_pq_.*) are returned apart, unrecognised.
func startupParams(b []byte) (map[string]string, []string) {
	params := map[string]string{}
	var unknown []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i <= 0 {
			break
		}
		name := string(b[:i])
		b = b[i+1:]
		j := bytes.IndexByte(b, 0)
		if j < 0 {
			break
		}
		value := string(b[:j])
		b = b[j+1:]
		if strings.HasPrefix(name, "_pq_.") {
			unknown = append(unknown, name)
			continue
		}
		params[name] = value
	}
	return params, unknown
}

// authenticate asks for the password (a JWT), checks it and the database,
// and sends what a client expects before its first query.
func (ss *session) authenticate(encrypted bool) error {
	s := ss.srv
	user := ss.startup["user"]
	ss.db = ss.startup["database"]
	if ss.db == "" {
		ss.db = user
	}
	if !encrypted && !s.AllowCleartext && !isLoopback(ss.conn.RemoteAddr()) {
		return fatalf(stateInvalidAuthSpec, "the password (a token) may travel unencrypted only from loopback addresses: connect with sslmode=require, or start hasvc with --pg-allow-cleartext")
	}
	ss.be.Send(&pgproto3.AuthenticationCleartextPassword{})
	if err := ss.be.Flush(); err != nil {
		return err
	}
	if err := ss.be.SetAuthType(pgproto3.AuthTypeCleartextPassword); err != nil {
		return err
	}
	msg, err := ss.be.Receive()
	if err != nil {
		return err
	}
	pw, ok := msg.(*pgproto3.PasswordMessage)
	if !ok {
		return fatalf(stateProtocolViolation, "expected a password message, got %T", msg)
	}
	gen := s.Auth.Generation() // before Verify: a reload in between is seen again
	p, err := s.Auth.Verify(strings.TrimSpace(pw.Password))
	if err != nil {
		return fatalf(stateInvalidPassword, "password authentication failed for user %q: %s", user, tenant.ErrorMessage(err))
	}
	if ss.db != catalogDB {
		// Checked before the database is looked up: a token learns
		// nothing of the databases it does not cover.
		if err := p.Can(ss.db, auth.PermRead); err != nil {
			return fatalf(stateInvalidPassword, "password authentication failed for user %q: %s", user, tenant.ErrorMessage(err))
		}
	}
	ss.principal, ss.token, ss.keysGen = p, strings.TrimSpace(pw.Password), gen
	ss.readOnly = p.Perm < auth.PermWrite
	ctx, cancel := context.WithTimeout(s.ctx, startupTimeout)
	defer cancel()
	db, release, err := s.DB.Acquire(ctx, ss.db)
	switch {
	case tenant.ErrorCode(err) == tenant.ENOTFOUND && ss.db == catalogDB:
		// The postgres database: any valid token opens it.
		if err := ss.openCatalogOnly(); err != nil {
			return err
		}
	case tenant.ErrorCode(err) == tenant.ENOTFOUND || tenant.ErrorCode(err) == tenant.EINVALID:
		return fatalf(stateUnknownDatabase, "database %q does not exist", ss.db)
	case err != nil:
		return &pgError{code: sqlstate(err), message: tenant.ErrorMessage(err), fatal: true}
	default:
		created := db.CreatedAt()
		ss.wideInts = db.Eventual()
		release()
		if err := p.Can(ss.db, auth.PermRead); err != nil {
			return fatalf(stateInvalidPassword, "password authentication failed for user %q: %s", user, tenant.ErrorMessage(err))
		}
		if err := p.CheckCreated(ss.db, created); err != nil {
			return fatalf(stateInvalidPassword, "password authentication failed for user %q: %s", user, tenant.ErrorMessage(err))
		}
	}
	// Only now does the session take one of the MaxConns slots.
	if s.Concurrency != nil {
		rel, err := s.Concurrency.Acquire(ss.db, strings.TrimSpace(pw.Password))
		if err != nil {
			return &pgError{code: stateTooManyConnections, message: tenant.ErrorMessage(err), fatal: true}
		}
		ss.releaseSlot = rel
	}
	if !s.register(ss) {
		return fatalf(stateTooManyConnections, "sorry, too many clients already")
	}
	if err := ss.startupOptions(); err != nil {
		pe := err.(*pgError)
		pe.fatal = true
		return pe
	}
	ss.settingsChanged()
	ss.be.Send(&pgproto3.AuthenticationOk{})
	for _, name := range reportedSettings {
		ss.be.Send(&pgproto3.ParameterStatus{Name: name, Value: ss.setting(name)})
	}
	ss.be.Send(&pgproto3.BackendKeyData{ProcessID: ss.pid, SecretKey: binary.BigEndian.AppendUint32(nil, ss.secret)})
	ss.be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	return ss.be.Flush()
}

func isLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	_, unix := a.(*net.UnixAddr)
	return unix
}

// fatal sends a FATAL error; the connection then closes.
func (ss *session) fatal(err error) {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return
	}
	if _, ok := err.(*pgError); !ok {
		ss.srv.Logger.Debug("pg connection", "err", err)
		if _, isNet := err.(net.Error); isNet {
			return
		}
	}
	r := errorResponse(err)
	r.Severity, r.SeverityUnlocalized = "FATAL", "FATAL"
	ss.be.Send(r)
	ss.be.Flush()
}
