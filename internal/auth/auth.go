// Package auth issues and verifies hasvc's JSON Web Tokens and carries the
// verified principal in a context. A token names its subject, the databases
// it may use (names, or "*" for all), what it may do there (read, write or
// admin; each includes the ones before it) and when it expires.
package auth

import (
	"context"
	"slices"
	"time"

	"hasvc/internal/tenant"
)

// Perm is what a token may do.
type Perm int

// Permissions, each including the ones before it.
const (
	PermRead Perm = iota + 1
	PermWrite
	PermAdmin
)

// ParsePerm parses "read", "write" or "admin".
func ParsePerm(s string) (Perm, error) {
	switch s {
	case "read":
		return PermRead, nil
	case "write":
		return PermWrite, nil
	case "admin":
		return PermAdmin, nil
	}
	return 0, tenant.Errorf(tenant.EINVALID, "invalid permission %q: want read, write or admin", s)
}

func (p Perm) String() string {
	switch p {
	case PermRead:
		return "read"
	case PermWrite:
		return "write"
	case PermAdmin:
		return "admin"
	}
	return "none"
}

// Principal is the verified holder of a token.
type Principal struct {
	Subject   string
	Databases []string // names, or "*"
	Perm      Perm
	ExpiresAt time.Time
	// ID is the token's id (its jti), by which it can be revoked; tokens
	// made before ids existed have none.
	ID       string
	IssuedAt time.Time
}

// Can returns nil if p may do perm on database db, EFORBIDDEN otherwise.
func (p *Principal) Can(db string, perm Perm) error {
	if p.Perm < perm {
		return tenant.Errorf(tenant.EFORBIDDEN, "token allows %s, this needs %s", p.Perm, perm)
	}
	if db != "" && !p.Covers(db) {
		return tenant.Errorf(tenant.EFORBIDDEN, "token does not cover database %q", db)
	}
	return nil
}

// CheckCreated refuses a token that names database db but was issued
// before db was created (at created): it was meant for an earlier
// database of that name, deleted since. Tokens for every database ("*")
// are not bound to any one creation.
func (p *Principal) CheckCreated(db string, created time.Time) error {
	if !p.Names(db) || !p.IssuedAt.Before(created.Truncate(time.Second)) {
		return nil
	}
	return tenant.Errorf(tenant.EUNAUTHORIZED, "the token was issued before database %q was created (at %s): it was for a database of that name deleted since; issue a new one",
		db, created.UTC().Format(time.RFC3339))
}

// Names reports whether the token names database db itself (not by "*").
func (p *Principal) Names(db string) bool { return slices.Contains(p.Databases, db) }

// Covers reports whether the token names database db.
func (p *Principal) Covers(db string) bool {
	return slices.Contains(p.Databases, "*") || slices.Contains(p.Databases, db)
}

type ctxKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal in ctx, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}
