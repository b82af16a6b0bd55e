package pg

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// FuzzStartup feeds arbitrary bytes to a connection's startup: the
// reader always ends (with a StartupMessage's parameters, a cancel, or an
// error) and never panics or loops, whatever the lengths and codes say.
func FuzzStartup(f *testing.F) {
	packet := func(code uint32, body string) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
		b = binary.BigEndian.AppendUint32(b, code)
		return append(b, body...)
	}
	f.Add(packet(3<<16, "user\x00u\x00database\x00d\x00\x00"))
	f.Add(packet(codeSSLRequest, ""))
	f.Add(append(packet(codeSSLRequest, ""), packet(3<<16, "user\x00u\x00\x00")...))
	f.Add(packet(codeGSSENCRequest, ""))
	f.Add(packet(codeCancelRequest, "\x00\x00\x00\x01\x00\x00\x00\x02"))
	f.Add(packet(3<<16|1, "_pq_.x\x00y\x00\x00"))
	f.Add(packet(2<<16, ""))
	f.Add([]byte{0, 0, 0, 4})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Add(packet(3<<16, "user\x00"))
	s := &Server{Logger: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		defer client.Close()
		defer server.Close()
		server.SetDeadline(time.Now().Add(300 * time.Millisecond))
		// Answers (S, N, NegotiateProtocolVersion) are read and dropped;
		// the client closes once it has sent everything, so the server
		// sees the end of its input.
		go io.Copy(io.Discard, client)
		go func() {
			client.Write(data)
			client.Close()
		}()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.negotiate(server)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("startup did not end on %q", data)
		}
	})
}
