package engine

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/tenant"
)

// The shared tail. Most change-feed readers are idle: caught up, waiting
// for the next write. Each used to hold an ordered consumer of its own (a
// subscription here, consumer state in the server: about 87 KB a
// reader). Now a node keeps one consumer per database at the end of its
// stream, the tail, and hands each new message to every caught-up reader
// of that database. A reader that is behind (it asked for old sequences,
// or fell behind) reads with a consumer of its own, at its own pace, and
// joins the tail once it has caught up with it; a reader too slow to take
// what the tail hands it leaves the tail and reads on its own again. A
// slow reader never holds more than its channel's tailBuffer messages on
// the node, and never slows the tail.

// tailBuffer is how many messages the tail may hand a reader ahead of it.
const tailBuffer = 64

// pull is an ordered consumer of a stream and the pull that reads it.
type pull struct {
	st   jetstream.Stream
	cons jetstream.Consumer
	msgs jetstream.MessagesContext
}

// startPull reads stream st from sequence from on, at most ahead messages
// ahead of its reader.
func startPull(ctx context.Context, st jetstream.Stream, from uint64, ahead int) (*pull, error) {
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
		// A consumer whose node went away goes soon after; one stopped
		// here is deleted at once (close).
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "change feed: "+err.Error())
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(ahead))
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "change feed: "+err.Error())
	}
	return &pull{st: st, cons: cons, msgs: msgs}, nil
}

// close stops the pull and deletes its consumer from the server, which
// would otherwise keep it (and its state) until it has been inactive for
// InactiveThreshold.
func (p *pull) close() {
	p.msgs.Stop()
	name := p.cons.CachedInfo().Name
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.st.DeleteConsumer(ctx, name)
	}()
}

type tailMsg struct {
	seq  uint64
	data []byte
}

// tail is the shared consumer at the end of one database's stream.
type tail struct {
	name string
	stop func()

	mu    sync.Mutex
	next  uint64             // the sequence the tail hands out next
	subs  map[*Feed]struct{} // caught-up readers
	users int                // feeds open on this tail
	err   error              // why the tail stopped, once it has
}

// tail returns database name's tail, starting it at the end of stream st
// if none runs; the caller releases it with releaseTail.
func (e *Engine) tail(ctx context.Context, name string, st jetstream.Stream) (*tail, error) {
	e.tailMu.Lock()
	defer e.tailMu.Unlock()
	if t := e.tails[name]; t != nil {
		t.mu.Lock()
		alive := t.err == nil
		if alive {
			t.users++
		}
		t.mu.Unlock()
		if alive {
			return t, nil
		}
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "change feed: "+err.Error())
	}
	next := info.State.LastSeq + 1
	p, err := startPull(ctx, st, next, tailBuffer)
	if err != nil {
		return nil, err
	}
	t := &tail{name: name, stop: p.close, next: next, subs: map[*Feed]struct{}{}, users: 1}
	if e.tails == nil {
		e.tails = map[string]*tail{}
	}
	e.tails[name] = t
	go t.run(p.msgs)
	return t, nil
}

// releaseTail drops a feed's use of t; the last one stops it.
func (e *Engine) releaseTail(t *tail) {
	e.tailMu.Lock()
	defer e.tailMu.Unlock()
	t.mu.Lock()
	t.users--
	last := t.users == 0
	t.mu.Unlock()
	if last {
		if e.tails[t.name] == t {
			delete(e.tails, t.name)
		}
		t.stop()
	}
}

// run hands each message of the stream's end to the caught-up readers.
func (t *tail) run(msgs jetstream.MessagesContext) {
	for {
		m, err := msgs.Next()
		if err != nil {
			t.mu.Lock()
			t.err = err
			for f := range t.subs {
				t.drop(f)
			}
			t.mu.Unlock()
			return
		}
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		msg := tailMsg{seq: meta.Sequence.Stream, data: m.Data()}
		t.mu.Lock()
		for f := range t.subs {
			select {
			case f.tailCh <- msg:
			default:
				t.drop(f) // too slow: it reads on its own again
			}
		}
		t.next = msg.seq + 1
		t.mu.Unlock()
	}
}

// drop takes f off the tail; f reads from its own consumer again. The
// caller holds t.mu.
func (t *tail) drop(f *Feed) {
	delete(t.subs, f)
	close(f.dropped)
}

// join puts f on the tail if it has caught up with it: every message
// before the tail's next was delivered to f already. Messages the tail
// hands f below f's next are skipped by f.
func (t *tail) join(f *Feed) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil || f.next < t.next {
		return false
	}
	f.tailCh = make(chan tailMsg, tailBuffer)
	f.dropped = make(chan struct{})
	t.subs[f] = struct{}{}
	return true
}

// leave takes f off the tail, if it is on it.
func (t *tail) leave(f *Feed) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.subs, f)
}
