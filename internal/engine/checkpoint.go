package engine

import (
	"hasvc/internal/sqlite"
	"time"
)

// The writer never checkpoints the WAL itself (wal_autocheckpoint is off on
// it): a checkpoint fsyncs the database file, and on the writer that stall
// would hold up every write and every applied message behind it. A
// connection of its own checkpoints instead, passively (it never blocks the
// writer or readers), whenever the writer committed since the last one
// that copied every frame.
// With synchronous=NORMAL the writer's commits then never wait for the disk;
// the stream is the durable log, and a copy that lost its last commits in a
// power cut applies them again from it.

const checkpointEvery = 500 * time.Millisecond

func (d *DB) checkpointer() {
	defer d.wg.Done()
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	var c *sqlite.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	done := d.version.Load()
	for {
		select {
		case <-d.closed:
			return
		case <-tick.C:
		}
		v := d.version.Load()
		if v == done {
			continue
		}
		if c == nil {
			var err error
			if c, err = sqlite.Open(d.eng.dsn(d.name), sqlite.Options{}); err != nil {
				d.log.Warn("checkpoint connection", "err", err)
				continue
			}
		}
		// Readers that keep a read transaction from before the commit
		// would hold the checkpoint back: idle ones end it now.
		d.endStaleKept()
		all, err := checkpoint(c)
		if err != nil {
			d.log.Warn("checkpoint", "err", err)
			continue
		}
		if all {
			// Not done while a reader's snapshot held frames back:
			// tried again at the next tick.
			done = v
		}
	}
}

// checkpoint copies what it can of the WAL into the database file
// without waiting for anyone, and reports whether that was every frame.
func checkpoint(c *sqlite.Conn) (all bool, err error) {
	var log, copied int64
	err = c.Query("PRAGMA wal_checkpoint(PASSIVE)", nil, func(s *sqlite.Stmt) error {
		log, _ = s.Column(1).(int64)
		copied, _ = s.Column(2).(int64)
		return nil
	})
	return copied >= log, err
}
