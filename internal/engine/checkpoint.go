package engine

import (
	"time"
)

// The writer never checkpoints the WAL itself (wal_autocheckpoint is off on
// it): a checkpoint fsyncs the database file, and on the writer that stall
// would hold up every write and every applied message behind it. A
// connection of its own checkpoints instead, passively (it never blocks the
// writer or readers), whenever the writer committed since the last one.
// With synchronous=NORMAL the writer's commits then never wait for the disk;
// the stream is the durable log, and a copy that lost its last commits in a
// power cut applies them again from it.

const checkpointEvery = 500 * time.Millisecond

func (d *DB) checkpointer() {
	defer d.wg.Done()
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	var c *conn
	defer func() {
		if c != nil {
			c.close()
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
			if c, err = openConn(d.eng.dsn(d.name), false); err != nil {
				d.log.Warn("checkpoint connection", "err", err)
				continue
			}
		}
		if err := c.exec("PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
			d.log.Warn("checkpoint", "err", err)
			continue
		}
		done = v
	}
}
