package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

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
// time. Taking a slot is a KV create, so two nodes never hold the same one;
// a node that took the slot this one chose first makes it fail with
// jetstream.ErrKeyExists: call it again (UntilReady does).
func (r *Registry) NodeSlot(ctx context.Context, node string) (int, error) {
	taken := map[int]bool{}
	mine := 0
	err := readAll(ctx, r.slots, func(e jetstream.KeyValueEntry) error {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Key(), "slot.")); err == nil {
			taken[n] = true
			if string(e.Value()) == node {
				mine = n
			}
		}
		return nil
	})
	if err != nil || mine != 0 {
		return mine, err
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
