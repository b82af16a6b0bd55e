package registry

import (
	"context"
	"time"
)

// UntilReady calls fn until it succeeds or ctx ends, giving each try its
// own deadline of per: JetStream answers no request until its cluster has
// a meta leader, and creating a replicated stream waits for that stream's
// own election, so the first tries of a new cluster time out.
func UntilReady(ctx context.Context, per time.Duration, fn func(context.Context) error) error {
	for {
		try, cancel := context.WithTimeout(ctx, per)
		err := fn(try)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}
