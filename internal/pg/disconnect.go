package pg

import (
	"net"
	"syscall"
	"time"
)

// Sessions whose client has gone.

// disconnectCheck is how often a running statement's connection is checked
// for a client that has gone (PostgreSQL's client_connection_check_interval).
const disconnectCheck = time.Second

// watchDisconnect cancels the running statement of a session whose client
// has closed its connection: while a statement runs the session does not
// read, so nothing else would notice, and the statement would run to its
// end (or its time limit) for no one. It peeks at the socket (MSG_PEEK,
// nothing is consumed: pipelined messages stay for the session) and
// treats end of stream or a reset as gone. It returns a function that
// stops the watch.
func (ss *session) watchDisconnect(c net.Conn) (stop func()) {
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return func() {}
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(disconnectCheck)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ss.mu.Lock()
			running := ss.running
			ss.mu.Unlock()
			if running && peerGone(raw) {
				ss.cancelRunning()
			}
		}
	}()
	return func() { close(done) }
}

// peerGone reports whether the peer of a socket has closed it.
func peerGone(raw syscall.RawConn) bool {
	var gone bool
	var buf [1]byte
	raw.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		gone = (n == 0 && err == nil) || err == syscall.ECONNRESET
	})
	return gone
}
