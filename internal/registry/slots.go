package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/tenant"
)

// Node slots: each node name holds one small number for life, kept in the
// KV bucket SlotsBucket as "slot.<n>" = node name. Eventual mode hands out
// the rowids of a node's inserts from its slot's range (tenant.RowidRange),
// so two nodes never give two new rows the same rowid.

// SlotsBucket is the KV bucket of node slots.
const SlotsBucket = "hasvc_node_slots"

func openSlots(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      SlotsBucket,
		Description: "hasvc node slots",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("open node slots bucket: %w", err)
	}
	return kv, nil
}

// NodeSlot returns the slot of node, taking the lowest free one the first
// time. Taking a slot is a KV create, so two nodes never hold the same one.
func (r *Registry) NodeSlot(ctx context.Context, node string) (int, error) {
	for attempt := 0; ; attempt++ {
		slot, err := r.nodeSlot(ctx, node)
		if err == nil || attempt >= 5 || ctx.Err() != nil {
			return slot, err
		}
		time.Sleep(200 * time.Millisecond) // a node took the slot first
	}
}

func (r *Registry) nodeSlot(ctx context.Context, node string) (int, error) {
	w, err := r.slots.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return 0, tenant.Wrap(tenant.EUNAVAILABLE, err, "node slots unavailable")
	}
	defer w.Stop()
	taken := map[int]bool{}
	for done := false; !done; {
		select {
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return 0, tenant.Errorf(tenant.EUNAVAILABLE, "node slots unavailable: the listing ended early")
			case e == nil:
				done = true
			default:
				n, err := strconv.Atoi(strings.TrimPrefix(e.Key(), "slot."))
				if err != nil {
					continue
				}
				if string(e.Value()) == node {
					return n, nil
				}
				taken[n] = true
			}
		case <-ctx.Done():
			return 0, tenant.Wrap(tenant.EUNAVAILABLE, ctx.Err(), "node slots unavailable")
		}
	}
	for n := 1; n <= tenant.MaxNodeSlot; n++ {
		if taken[n] {
			continue
		}
		_, err := r.slots.Create(ctx, "slot."+strconv.Itoa(n), []byte(node))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, err // taken meanwhile: look again
		}
		if err != nil {
			return 0, tenant.Wrap(tenant.EUNAVAILABLE, err, "node slots unavailable")
		}
		return n, r.flushed(SlotsBucket)
	}
	return 0, fmt.Errorf("every node slot (1 to %d) is taken", tenant.MaxNodeSlot)
}
