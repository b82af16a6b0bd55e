package engine

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/tenant"
)

// Consumers for tenants: durable pull consumers on a database's stream,
// which a tenant reads over NATS with its database's token (see
// broker/access.go for why tenants cannot create consumers over NATS
// themselves).

// MaxConsumers is how many consumers a database's tenants may have.
const MaxConsumers = 16

// consumerIdle is how long a consumer nobody fetches from is kept.
const consumerIdle = 7 * 24 * time.Hour

// ConsumerInfo describes a tenant's consumer.
type ConsumerInfo struct {
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	FromSeq  uint64 `json:"from_seq"`
	Pending  uint64 `json:"pending"`
}

// CreateConsumer creates (or returns, if it exists with the same start)
// the pull consumer name on database db's stream, delivering from sequence
// from (1 if 0), acknowledged message by message.
func (e *Engine) CreateConsumer(ctx context.Context, db, name string, from uint64) (*ConsumerInfo, error) {
	if err := tenant.ValidateName(name); err != nil {
		return nil, tenant.Errorf(tenant.EINVALID, "consumer name %q: letters, digits, - and _, at most 64", name)
	}
	d, release, err := e.Acquire(ctx, db)
	if err != nil {
		return nil, err
	}
	defer release()
	if from == 0 {
		from = 1
	}
	if existing, err := d.stream.Consumer(ctx, name); err == nil {
		if existing.CachedInfo().Config.OptStartSeq != from {
			return nil, tenant.Errorf(tenant.ECONFLICT, "consumer %q exists with another start sequence; delete it first", name)
		}
		return consumerInfo(db, existing.CachedInfo()), nil
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "stream unavailable")
	}
	n := 0
	for ci := range d.stream.ListConsumers(ctx).Info() {
		if ci.Config.Durable != "" {
			n++
		}
	}
	if n >= MaxConsumers {
		return nil, tenant.Errorf(tenant.ETOOMANY, "database %q has %d consumers, the most it may have; delete one", db, n)
	}
	c, err := d.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:           name,
		Description:       "hasvc tenant consumer",
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckExplicitPolicy,
		InactiveThreshold: consumerIdle,
	})
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "create consumer: "+err.Error())
	}
	return consumerInfo(db, c.CachedInfo()), nil
}

// DeleteConsumer deletes a tenant's consumer of database db.
func (e *Engine) DeleteConsumer(ctx context.Context, db, name string) error {
	if err := tenant.ValidateName(name); err != nil {
		return tenant.Errorf(tenant.ENOTFOUND, "no consumer %q", name)
	}
	d, release, err := e.Acquire(ctx, db)
	if err != nil {
		return err
	}
	defer release()
	c, err := d.stream.Consumer(ctx, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || (err == nil && c.CachedInfo().Config.Durable == "") {
		return tenant.Errorf(tenant.ENOTFOUND, "no consumer %q", name)
	} else if err != nil {
		return tenant.Wrap(tenant.EUNAVAILABLE, err, "stream unavailable")
	}
	if err := d.stream.DeleteConsumer(ctx, name); err != nil {
		return tenant.Wrap(tenant.EUNAVAILABLE, err, "delete consumer: "+err.Error())
	}
	return nil
}

func consumerInfo(db string, ci *jetstream.ConsumerInfo) *ConsumerInfo {
	return &ConsumerInfo{Stream: tenant.StreamName(db), Consumer: ci.Name, FromSeq: ci.Config.OptStartSeq, Pending: ci.NumPending}
}
