package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// Feed reads a database's committed transactions, one stream message
// each, in order and at its reader's pace. Caught up, it takes them from
// the database's shared tail (tail.go); behind, from an ordered consumer
// of its own that pulls at most feedBuffer messages ahead, so a slow
// reader holds a bounded buffer on the node, not the stream.
type Feed struct {
	e  *Engine
	st jetstream.Stream
	t  *tail

	// The tail's hand-off, while the feed is on it (set by tail.join;
	// dropped is closed when the tail lets it go).
	tailCh  chan tailMsg
	dropped chan struct{}
	onTail  bool

	mu   sync.Mutex
	own  *pull         // reading on its own; nil on the tail
	done chan struct{} // closed by Stop
	stop sync.Once

	next uint64
	// First is the sequence the feed starts at.
	First uint64
}

// feedBuffer is how many messages a feed reading on its own pulls ahead
// of its reader.
const feedBuffer = 64

// TrimmedError says that a feed's next sequence is no longer in the
// stream: retention trimmed it. First is the oldest message kept.
type TrimmedError struct {
	Requested, First uint64
}

func (e *TrimmedError) Error() string {
	return fmt.Sprintf("sequence %d is no longer in the stream, which starts at %d: start again from a snapshot", e.Requested, e.First)
}

// Feed opens database name's change feed after sequence after, or, with
// fromEnd, after its last message (only what is written from now on). A
// *TrimmedError if the messages after after were trimmed.
func (e *Engine) Feed(ctx context.Context, name string, after uint64, fromEnd bool) (*Feed, error) {
	cfg, err := e.Registry.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	st, err := e.streamOf(ctx, cfg)
	if err != nil {
		return nil, err
	}
	state := st.CachedInfo().State
	if fromEnd {
		after = state.LastSeq
	}
	if state.FirstSeq > after+1 && state.LastSeq > after {
		return nil, &TrimmedError{Requested: after + 1, First: state.FirstSeq}
	}
	t, err := e.tail(ctx, name, st)
	if err != nil {
		return nil, err
	}
	f := &Feed{e: e, st: st, t: t, done: make(chan struct{}), next: after + 1, First: after + 1}
	if t.join(f) {
		f.onTail = true
	} else if err := f.readOwn(ctx); err != nil {
		e.releaseTail(t)
		return nil, err
	}
	return f, nil
}

// readOwn starts the feed's own consumer at its next sequence.
func (f *Feed) readOwn(ctx context.Context) error {
	p, err := startPull(ctx, f.st, f.next, feedBuffer)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		p.close()
		return errFeedStopped
	default:
	}
	f.own = p
	return nil
}

var errFeedStopped = errors.New("feed stopped")

// Next waits for the next transaction and returns its sequence and its
// message (the documented format). It fails with a *TrimmedError if the
// stream skips sequences (trimmed while the feed ran), and once Stop is
// called. One goroutine calls Next; Stop may come from another.
func (f *Feed) Next() (uint64, []byte, error) {
	for {
		if f.onTail {
			select {
			case m := <-f.tailCh:
				if m.seq < f.next {
					continue // read on its own before it joined
				}
				if m.seq > f.next {
					return 0, nil, &TrimmedError{Requested: f.next, First: m.seq}
				}
				f.next++
				return m.seq, m.data, nil
			case <-f.dropped:
				// Too slow for the tail (or the tail stopped): read on
				// from the stream, from the first message not delivered.
				f.onTail = false
				if err := f.readOwn(context.Background()); err != nil {
					return 0, nil, err
				}
				continue
			case <-f.done:
				return 0, nil, errFeedStopped
			}
		}
		f.mu.Lock()
		own := f.own
		f.mu.Unlock()
		if own == nil {
			return 0, nil, errFeedStopped
		}
		if f.t.join(f) {
			// Caught up: the tail hands it the rest.
			f.mu.Lock()
			f.own = nil
			f.mu.Unlock()
			own.close()
			f.onTail = true
			continue
		}
		m, err := own.msgs.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return 0, nil, errFeedStopped
			}
			return 0, nil, err
		}
		meta, err := m.Metadata()
		if err != nil {
			return 0, nil, err
		}
		seq := meta.Sequence.Stream
		if seq != f.next {
			return 0, nil, &TrimmedError{Requested: f.next, First: seq}
		}
		f.next = seq + 1
		return seq, m.Data(), nil
	}
}

// Stop ends the feed; a Next waiting returns.
func (f *Feed) Stop() {
	f.stop.Do(func() {
		f.mu.Lock()
		close(f.done)
		own := f.own
		f.own = nil
		f.mu.Unlock()
		if own != nil {
			own.close()
		}
		f.t.leave(f)
		f.e.releaseTail(f.t)
	})
}
