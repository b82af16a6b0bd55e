package engine

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hasvc/internal/tenant"
)

// The NATS accounts of the databases. On the embedded server a database's
// stream and bucket live in one of tenant.Accounts accounts
// (tenant.Config.Account), so that JetStream, which checks a new stream
// against every stream of its account, creates the n-th database as
// quickly as the first. The registry, the nodes' buckets and the requests
// between nodes stay in the node's own account (NC, JS), as do the
// databases created before accounts (Account "") and every database
// created by a node that uses an external NATS server (Accounts false).

// natsAccount is this node's connection to one account.
type natsAccount struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// accountFor returns the account a new database named name goes to.
func (e *Engine) accountFor(name string) string {
	if !e.Accounts || e.ConnectAccount == nil {
		return ""
	}
	return tenant.AccountOf(name)
}

// account returns this node's connection to account ("": NC and JS),
// connecting on first use.
func (e *Engine) account(account string) (*natsAccount, error) {
	if account == "" {
		return &natsAccount{nc: e.NC, js: e.JS}, nil
	}
	e.accountsMu.Lock()
	defer e.accountsMu.Unlock()
	if a := e.accounts[account]; a != nil {
		return a, nil
	}
	if e.ConnectAccount == nil || !tenant.IsAccount(account) {
		return nil, tenant.Errorf(tenant.EUNAVAILABLE, "NATS account %q is not on this node's server", account)
	}
	nc, js, err := e.ConnectAccount(account)
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, fmt.Sprintf("connect to NATS account %s: %v", account, err))
	}
	if e.accounts == nil {
		e.accounts = map[string]*natsAccount{}
	}
	a := &natsAccount{nc: nc, js: js}
	e.accounts[account] = a
	return a, nil
}

// jsOf returns the JetStream of the account of the database cfg.
func (e *Engine) jsOf(cfg tenant.Config) (jetstream.JetStream, error) {
	a, err := e.account(cfg.Account)
	if err != nil {
		return nil, err
	}
	return a.js, nil
}

// closeAccounts closes the connections to the databases' accounts.
func (e *Engine) closeAccounts() {
	e.accountsMu.Lock()
	defer e.accountsMu.Unlock()
	for _, a := range e.accounts {
		a.nc.Close()
	}
	e.accounts = nil
}

// NATSAccount returns the NATS account of database name's stream ("": the
// account of the node's connection).
func (e *Engine) NATSAccount(ctx context.Context, name string) (string, error) {
	cfg, err := e.Registry.Get(ctx, name)
	return cfg.Account, err
}

// streamOf returns the stream of the database cfg; EUNAVAILABLE if
// JetStream does not answer.
func (e *Engine) streamOf(ctx context.Context, cfg tenant.Config) (jetstream.Stream, error) {
	js, err := e.jsOf(cfg)
	if err != nil {
		return nil, err
	}
	st, err := js.Stream(ctx, tenant.StreamName(cfg.Name))
	if err != nil {
		return nil, tenant.Wrap(tenant.EUNAVAILABLE, err, "database stream unavailable: "+err.Error())
	}
	return st, nil
}
