package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/change"
	"hasvc/internal/registry"
)

// catchUp applies every message of the stream beyond the applied sequence,
// in order, each in the same SQLite transaction as the new applied
// sequence (several messages share one transaction when there are many). It
// runs on the writer goroutine, or before it starts.
func (d *DB) catchUp(ctx context.Context) error {
	state, err := d.streamState(ctx)
	if err != nil {
		return err
	}
	return d.catchUpTo(ctx, state)
}

// catchUpTo is catchUp given the stream's state, asked for no earlier than
// the writer was last idle (openDB passes the state it opened the stream
// with, saving a request per cold open).
func (d *DB) catchUpTo(ctx context.Context, state jetstream.StreamState) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var err error
	last := state.LastSeq
	applied := d.applied.Load()
	if applied > last {
		// An answer given in the middle of a leader change, or by a
		// replica that was cut off, can put the stream's end behind what
		// it holds: only an end that stays behind this copy is believed.
		if last, err = d.confirmEnd(ctx, applied); err != nil {
			return err
		}
	}
	if applied > last {
		// The copy committed writes the stream no longer has: the store
		// lost its newest messages (a power loss under an fsync
		// interval), or the stream was deleted and made again. The stream
		// is the truth; until the copy is rebuilt from it, writes here
		// would collide with sequences the copy thinks it has.
		reason := fmt.Sprintf("this copy has applied %d but the stream ends at %d", applied, last)
		if d.rebuilding.Load() {
			return errors.New(reason) // said once already
		}
		d.rebuildLater(reason)
		return d.setStuck(reason)
	}
	if applied == last {
		return nil
	}
	if state.FirstSeq > applied+1 {
		d.rebuildLater("the stream was trimmed past this copy")
		return d.setStuck(fmt.Sprintf("stream starts at %d but this copy has applied only %d", state.FirstSeq, applied))
	}
	if last-applied <= directGetMax {
		return d.catchUpDirect(ctx, applied, last)
	}
	if err := d.catchUpConsumer(ctx, applied, last); err != nil {
		d.log.Warn("catch-up with a consumer failed; reading message by message", "err", err)
		return d.catchUpDirect(ctx, d.applied.Load(), last)
	}
	return nil
}

// catchUpConsumer applies messages applied+1..last read with an ordered
// consumer, in transactions of up to 256 messages.
func (d *DB) catchUpConsumer(ctx context.Context, applied, last uint64) error {
	cons, err := d.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       applied + 1,
		InactiveThreshold: orderedIdle,
	})
	if err != nil {
		return fmt.Errorf("catch-up consumer: %w", err)
	}
	for applied < last {
		// A fetch waits for messages up to its own limit, whatever ctx
		// says: it gets no more than what is left of ctx.
		wait := 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, max(time.Until(dl), 10*time.Millisecond))
		}
		batch, err := cons.Fetch(int(min(last-applied, 256)), jetstream.FetchMaxWait(wait))
		if err != nil {
			return fmt.Errorf("fetch from %d: %w", applied+1, err)
		}
		var msgs []seqMessage
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			sm, err := d.decodeMessage(meta.Sequence.Stream, m.Data(), m.Headers())
			if err != nil {
				return err
			}
			msgs = append(msgs, sm)
		}
		if err := batch.Error(); err != nil && len(msgs) == 0 {
			return fmt.Errorf("fetch from %d: %w", applied+1, err)
		}
		if len(msgs) == 0 {
			return fmt.Errorf("fetch from %d: no messages", applied+1)
		}
		if err := d.applyMessages(msgs); err != nil {
			return err
		}
		applied = d.applied.Load()
	}
	return nil
}

// confirmEnd asks the stream for its last sequence confirmChecks more
// times, a second apart, while it stays behind applied, and returns the
// last answer.
func (d *DB) confirmEnd(ctx context.Context, applied uint64) (uint64, error) {
	var last uint64
	for range confirmChecks {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return 0, fmt.Errorf("stream info: %w", ctx.Err())
		}
		state, err := d.streamState(ctx)
		if err != nil {
			return 0, err
		}
		if last = state.LastSeq; last >= applied {
			break
		}
	}
	return last, nil
}

// streamState asks the stream's leader for the stream's state.
func (d *DB) streamState(ctx context.Context) (jetstream.StreamState, error) {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	info, err := d.stream.Info(rctx)
	if err != nil {
		return jetstream.StreamState{}, fmt.Errorf("stream info: %w", err)
	}
	return info.State, nil
}

// confirmChecks is how many more answers confirmEnd asks for.
const confirmChecks = 3

// requestTimeout bounds one JetStream request during catch-up.
const requestTimeout = 5 * time.Second

// directGetMax is the largest gap catch-up fills with message gets (the
// stream leader answers one message per request) rather than with a
// consumer, which costs a consumer creation first.
const directGetMax = 1024

// catchUpDirect applies messages applied+1..last, read one by one from the
// stream leader (a replica could still lack the newest).
func (d *DB) catchUpDirect(ctx context.Context, applied, last uint64) error {
	msgs := make([]seqMessage, 0, min(last-applied, 256))
	for seq := applied + 1; seq <= last; seq++ {
		if len(msgs) == 256 {
			if err := d.applyMessages(msgs); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
		// A request the old leader took when leadership moved is never
		// answered: each get has its own deadline and is tried again.
		var raw *jetstream.RawStreamMsg
		err := registry.UntilReady(ctx, requestTimeout, func(ctx context.Context) error {
			var err error
			raw, err = d.stream.GetMsg(ctx, seq)
			return err
		})
		if err != nil {
			return fmt.Errorf("get message %d: %w", seq, err)
		}
		sm, err := d.decodeMessage(seq, raw.Data, raw.Header)
		if err != nil {
			return err
		}
		msgs = append(msgs, sm)
	}
	return d.applyMessages(msgs)
}

type seqMessage struct {
	seq uint64
	msg change.Message
	// key and results: the idempotency key of the request that wrote it,
	// and its results (idempotency.go), from the message's headers.
	key     string
	results []byte
}

// decodeMessage decodes message seq of the stream, with the idempotency
// key and results its headers carry. A message that does not decode
// leaves the database stuck on it.
func (d *DB) decodeMessage(seq uint64, data []byte, h nats.Header) (seqMessage, error) {
	sm := seqMessage{seq: seq}
	if err := json.Unmarshal(data, &sm.msg); err != nil {
		return sm, d.markStuck(seq, fmt.Errorf("decode: %w", err))
	}
	sm.key, sm.results = messageRequest(h)
	return sm, nil
}

// applyMessages applies messages (in stream order) in one transaction with
// the applied sequence. Messages at or below the applied sequence are
// skipped, so a message delivered twice changes nothing.
func (d *DB) applyMessages(msgs []seqMessage) error {
	w := d.writer
	if err := w.ApplyMode(true); err != nil {
		return err
	}
	defer w.ApplyMode(false)
	applied := d.applied.Load()
	err := w.Internal(func() error { return w.Exec("BEGIN IMMEDIATE") })
	if err != nil {
		return err
	}
	var met []int64 // queued writes of this node that apply meets
	for _, m := range msgs {
		if m.seq <= applied {
			continue
		}
		if m.seq != applied+1 {
			w.Internal(func() error { return w.Exec("ROLLBACK") })
			d.rebuildLater("the stream was trimmed past this copy")
			return fmt.Errorf("%w: got %d after %d", errGap, m.seq, applied)
		}
		here := d.ahead[m.seq]
		if !here && d.metQueued(m.msg.Node, m.msg.Timestamp) {
			// A queued write of this node, committed here already.
			here = true
			met = append(met, m.msg.Timestamp)
			if err := w.Internal(func() error { return w.Exec("DELETE FROM _hasvc_outbox WHERE ts = ?", m.msg.Timestamp) }); err != nil {
				w.Internal(func() error { return w.Exec("ROLLBACK") })
				return err
			}
		}
		d.lastTS = max(d.lastTS, m.msg.Timestamp) // the clock follows what it sees
		if err := w.ApplyMessage(&m.msg, here); err != nil {
			w.Internal(func() error { return w.Exec("ROLLBACK") })
			w.SchemaChanged()
			return d.markStuck(m.seq, err)
		}
		if m.key != "" {
			if err := d.recordRequest(m.key, m.seq, m.results); err != nil {
				w.Internal(func() error { return w.Exec("ROLLBACK") })
				return err
			}
		}
		applied = m.seq
	}
	err = w.Internal(func() error {
		if err := w.Exec("UPDATE _hasvc_state SET applied_seq = ?", int64(applied)); err != nil {
			return err
		}
		if len(d.ahead) > 0 {
			if err := w.Exec("DELETE FROM _hasvc_ahead WHERE seq <= ?", int64(applied)); err != nil {
				return err
			}
		}
		return w.Exec("COMMIT")
	})
	if err != nil {
		w.Internal(func() error { return w.Exec("ROLLBACK") })
		w.SchemaChanged()
		return err
	}
	d.version.Add(1)
	for seq := range d.ahead {
		if seq <= applied {
			delete(d.ahead, seq)
		}
	}
	for _, ts := range met {
		delete(d.outbox, ts)
	}
	if len(met) > 0 {
		d.outboxChanged(true)
	}
	d.setApplied(applied)
	now := d.eng.now().UnixNano()
	for _, m := range msgs {
		if m.msg.Node != d.eng.Node && m.msg.Timestamp > 0 {
			d.lag.add(time.Duration(now - m.msg.Timestamp))
			d.eng.counters.applied.Add(1)
		}
	}
	return nil
}

// errGap is a message that does not follow the last one applied: the
// stream was trimmed past this copy.
var errGap = errors.New("gap in the stream")

// rebuildLater rebuilds this copy from the newest snapshot and the stream
// after it (Repair), once its current users are done: the messages it
// lacks were trimmed from the stream (retention), so only a snapshot has
// them, or it holds messages the stream lost.
func (d *DB) rebuildLater(reason string) {
	if !d.rebuilding.CompareAndSwap(false, true) {
		return
	}
	d.log.Warn("rebuilding this copy from the newest snapshot and the stream", "reason", reason)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if _, err := d.eng.Repair(ctx, d.name); err != nil {
			d.log.Error("rebuild from snapshot", "err", err)
		}
	}()
}

// markStuck records that message seq cannot be applied: the database
// refuses writes until an operator fixes it, rather than skip a message
// silently.
func (d *DB) markStuck(seq uint64, err error) error {
	return d.setStuck(fmt.Sprintf("cannot apply message %d: %v", seq, err))
}

// setStuck records why the database cannot apply its stream: status, log
// and metric report it.
func (d *DB) setStuck(reason string) error {
	d.stuck.Store(&reason)
	d.eng.counters.stuck.Add(1)
	d.log.Error("database stuck", "reason", reason)
	return errors.New(reason)
}

// Stuck returns why the database cannot apply its stream, or "".
func (d *DB) Stuck() string {
	if s := d.stuck.Load(); s != nil {
		return *s
	}
	return ""
}
