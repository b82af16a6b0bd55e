package engine

import (
	"hasvc/internal/registry"
	"hasvc/internal/tenant"
)

// Durability makes what JetStream acknowledged durable.
// A stream is named by its account ("": the node's own) and its name.
type Durability interface {
	Stream(account, name string) error // every message of the stream acknowledged so far
	Release(account, name string)      // the stream's writer is gone, or the stream deleted
	Err() error                        // the first fsync that failed, if any
}

// stored names a stream for flush: its account and its name.
type stored struct{ account, name string }

// flush makes what the streams acknowledged durable (see Durable), for
// the rare writes of hasvc's own that users are told succeeded. It keeps
// no file of a database's streams open (a database's writer keeps its
// stream's while it is open): a node holds many more databases than it
// may open files. The registry's stays open, as every create flushes it.
func (e *Engine) flush(streams ...stored) error {
	if e.Durable == nil {
		return nil
	}
	for _, s := range streams {
		err := e.Durable.Stream(s.account, s.name)
		if s != (stored{"", registry.Stream}) {
			e.Durable.Release(s.account, s.name)
		}
		if err != nil {
			return tenant.Wrap(tenant.EUNAVAILABLE, err, "stored, but not flushed to disk")
		}
	}
	return nil
}
