package main

import (
	"context"
	"time"

	"hasvc/internal/broker"
	"hasvc/internal/registry"
	"hasvc/internal/tenant"
)

// Tokens beyond HTTP and PostgreSQL: NATS access and revocation.

// authorizeNATS lets a tenant's token in to the embedded NATS server: a
// token naming exactly one database, issued after that database was
// created, reads that database's stream (see broker/access.go).
func (m *Main) authorizeNATS(token string) (*broker.Access, error) {
	p, err := m.keys.Verify(token)
	if err != nil {
		return nil, err
	}
	if len(p.Databases) != 1 || p.Databases[0] == "*" {
		return nil, tenant.Errorf(tenant.EFORBIDDEN, "a NATS token names exactly one database (hasvc token --nats --db NAME)")
	}
	db := p.Databases[0]
	eng := m.engine
	if eng == nil {
		return nil, tenant.Errorf(tenant.EUNAVAILABLE, "starting")
	}
	ctx, cancel := context.WithTimeout(m.life, 5*time.Second)
	defer cancel()
	created, err := eng.Created(ctx, db)
	if err != nil {
		return nil, err
	}
	if err := p.CheckCreated(db, created); err != nil {
		return nil, err
	}
	account, err := eng.NATSAccount(ctx, db)
	if err != nil {
		return nil, err
	}
	return &broker.Access{Database: db, Account: account, ID: p.ID, Expires: p.ExpiresAt}, nil
}

// revokeToken returns what POST /tokens/revoke does: put the token (or its
// id) on the cluster's deny list, and on this node's at once.
func (m *Main) revokeToken(reg *registry.Registry) func(ctx context.Context, token, id string) (string, error) {
	return func(ctx context.Context, token, id string) (string, error) {
		var expires time.Time
		if token != "" {
			var err error
			if id, expires, err = m.keys.Parse(token); err != nil {
				return "", err
			}
		}
		if id == "" {
			return "", tenant.Errorf(tenant.EINVALID, `give "token" or "id"`)
		}
		expires, err := reg.Revoke(ctx, id, expires, m.Now())
		if err != nil {
			return "", err
		}
		m.revoked.Add(id, expires)
		return id, nil
	}
}

// endSessions closes what a revoked token holds open on this node.
func (m *Main) endSessions(id string) {
	if pg := m.pg; pg != nil {
		pg.Revoke(id)
	}
	if b := m.broker; b != nil {
		if err := b.Disconnect(id); err != nil {
			m.Logger.Warn("disconnect revoked token's NATS connections", "err", err)
		}
	}
	m.Logger.Info("token revoked", "id", id)
}
