package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/tenant"
)

// Feed reads a database's committed transactions, one stream message
// each, in order and at its reader's pace: an ordered consumer that pulls
// at most feedBuffer messages ahead, so a slow reader holds a bounded
// buffer on the node, not the stream.
type Feed struct {
	msgs jetstream.MessagesContext
	next uint64
	// First is the sequence the feed starts at.
	First uint64
}

// feedBuffer is how many messages a feed pulls ahead of its reader.
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
	if _, err := e.Registry.Get(ctx, name); err != nil {
		return nil, err
	}
	st, err := e.JS.Stream(ctx, tenant.StreamName(name))
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "database stream unavailable: "+err.Error())
	}
	state := st.CachedInfo().State
	if fromEnd {
		after = state.LastSeq
	}
	if state.FirstSeq > after+1 && state.LastSeq > after {
		return nil, &TrimmedError{Requested: after + 1, First: state.FirstSeq}
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   after + 1,
	})
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "change feed: "+err.Error())
	}
	msgs, err := cons.Messages(jetstream.PullMaxMessages(feedBuffer))
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "change feed: "+err.Error())
	}
	return &Feed{msgs: msgs, next: after + 1, First: after + 1}, nil
}

// Next waits for the next transaction and returns its sequence and its
// message (the documented format). It fails with a *TrimmedError if the
// stream skips sequences (trimmed while the feed ran), and once Stop is
// called.
func (f *Feed) Next() (uint64, []byte, error) {
	m, err := f.msgs.Next()
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return 0, nil, errors.New("feed stopped")
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

// Stop ends the feed; a Next waiting returns.
func (f *Feed) Stop() { f.msgs.Stop() }
