package pg

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"hasvc/internal/auth"
	"hasvc/internal/tenant"
)

type refuseAll struct{}

func (refuseAll) Generation() uint64 { return 0 }

func (refuseAll) Verify(string) (*auth.Principal, error) {
	return nil, tenant.Errorf(tenant.EUNAUTHORIZED, "invalid token")
}

// startupOverPipe runs a connection whose peer is not a loopback address
// (a pipe) and returns the first answer to a StartupMessage, and the
// answer to a password if the server asked for one.
func startupOverPipe(t *testing.T, s *Server) (first, second pgproto3.BackendMessage) {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serveConn(server)
	}()
	t.Cleanup(func() { client.Close(); <-done })
	client.SetDeadline(time.Now().Add(5 * time.Second))
	fe := pgproto3.NewFrontend(client, client)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u", "database": "d"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	switch m := m.(type) {
	case *pgproto3.ErrorResponse:
		c := *m
		return &c, nil
	case *pgproto3.AuthenticationCleartextPassword:
		first = m
	default:
		t.Fatalf("first answer %T", m)
	}
	fe.Send(&pgproto3.PasswordMessage{Password: "not-a-token"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err = fe.Receive()
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return first, m
}

// A password travels in cleartext: without TLS it is accepted only from
// loopback addresses, unless AllowCleartext says otherwise.
func TestCleartextOnlyFromLoopback(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := &Server{Auth: refuseAll{}, Logger: logger, sessions: map[uint32]*session{}}
	first, _ := startupOverPipe(t, s)
	if e, ok := first.(*pgproto3.ErrorResponse); !ok || e.Code != stateInvalidAuthSpec || e.Severity != "FATAL" {
		t.Fatalf("non-loopback without TLS: %#v", first)
	}

	s = &Server{Auth: refuseAll{}, Logger: logger, AllowCleartext: true, sessions: map[uint32]*session{}}
	first, second := startupOverPipe(t, s)
	if _, ok := first.(*pgproto3.AuthenticationCleartextPassword); !ok {
		t.Fatalf("with AllowCleartext: %#v", first)
	}
	if e, ok := second.(*pgproto3.ErrorResponse); !ok || e.Code != stateInvalidPassword {
		t.Fatalf("bad token: %#v", second)
	}
}
