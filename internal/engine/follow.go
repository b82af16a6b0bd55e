package engine

import (
	"context"
	"errors"
	"hasvc/internal/sqlite"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// follow is the apply loop of an open database: it reads the database's
// stream in order from the applied sequence, with an ordered consumer (an
// ephemeral, unreplicated consumer: no Raft group per node and database),
// and applies on the writer every message this copy does not have yet,
// whichever node wrote it. Messages this node committed itself are at or
// below the applied sequence and are skipped.
func (d *DB) follow() {
	defer d.wg.Done()
	ctx := d.ctx
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if d.eng.alone() {
			select {
			case <-time.After(heartbeat / 4):
			case <-ctx.Done():
			}
			continue
		}
		d.following.Store(true)
		err := d.followFrom(ctx)
		d.following.Store(false)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = 100 * time.Millisecond
			continue // alone again
		}
		d.log.Warn("apply loop restarts", "err", err, "applied", d.applied.Load())
		if err == errStalled {
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			if err := d.do(cctx, func(*sqlite.Conn) error { return d.catchUp(cctx) }); err != nil {
				d.log.Warn("catch-up after a stalled apply loop", "err", err)
			}
			cancel()
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// errStalled: the apply loop's consumer delivered nothing while the
// stream held more.
var errStalled = errors.New("the consumer delivers nothing while the stream holds more than this copy")

// orderedIdle is how long the server keeps an ordered consumer of the
// apply loop or of catch-up that nobody reads. Each restart of the loop
// makes a new one, and one whose delete did not get through (a partition)
// is left to this timeout: at nats.go's default of five minutes, a node
// restarting its loop through a partition reached JetStream's limit of
// 1,000 consumers per stream and could follow the stream no more.
const orderedIdle = 15 * time.Second

// followFrom consumes the stream from the sequence after the applied one
// until ctx ends, applying fails, or no other node is live (it then
// returns nil).
func (d *DB) followFrom(ctx context.Context) error {
	if d.Stuck() != "" {
		<-ctx.Done() // a stuck database waits for an operator
		return ctx.Err()
	}
	cons, err := d.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       d.applied.Load() + 1,
		InactiveThreshold: orderedIdle,
	})
	if err != nil {
		return err
	}
	msgs := make(chan jetstream.Msg, 256)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return err
	}
	defer cc.Stop()
	check := time.NewTicker(heartbeat)
	defer check.Stop()
	quiet := 0 // checks without a message
	for {
		var m jetstream.Msg
		select {
		case m = <-msgs:
			quiet = 0
		case <-check.C:
			if d.eng.alone() {
				return nil
			}
			// A consumer whose server's replica of the stream stalled
			// (it failed to catch up after a partition) keeps sending
			// heartbeats and no messages. This node's own writes say
			// the stream holds more than the copy has applied: start
			// over, catching up from the stream's leader first.
			if quiet++; quiet >= 2 && d.lastAhead.Load() > d.applied.Load() {
				return errStalled
			}
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		batch := []jetstream.Msg{m}
	more:
		for len(batch) < 256 {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break more
			}
		}
		var todo []seqMessage
		for _, m := range batch {
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			if meta.Sequence.Stream <= d.applied.Load() {
				continue
			}
			sm, err := d.decodeMessage(meta.Sequence.Stream, m.Data(), m.Headers())
			if err != nil {
				return err
			}
			todo = append(todo, sm)
		}
		if len(todo) == 0 {
			continue
		}
		if err := d.do(ctx, func(*sqlite.Conn) error { return d.applyMessages(todo) }); err != nil {
			return err
		}
	}
}
