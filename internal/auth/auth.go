// Package auth issues and verifies hasvc's JSON Web Tokens and carries the
// verified principal in a context. A token names its subject, the databases
// it may use (names, or "*" for all), what it may do there (read, write or
// admin; each includes the ones before it) and when it expires.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

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

// Covers reports whether the token names database db.
func (p *Principal) Covers(db string) bool {
	return slices.Contains(p.Databases, "*") || slices.Contains(p.Databases, db)
}

// claims is a token's body.
type claims struct {
	jwt.RegisteredClaims
	Databases []string `json:"dbs"`
	Perm      string   `json:"perm"`
}

// Keys signs and verifies tokens with one HMAC-SHA256 key, which every node
// of a cluster shares.
type Keys struct {
	secret []byte
	Now    func() time.Time

	// verified caches principals by token: clients send the same token
	// with every request, and parsing it costs more than the query. A
	// cached principal is used only until its token expires.
	mu       sync.Mutex
	verified map[string]*Principal
}

// maxVerified bounds the verified-token cache; when full it starts over.
const maxVerified = 4096

// NewKeys returns Keys for a secret of at least 32 bytes.
func NewKeys(secret []byte) (*Keys, error) {
	if len(secret) < 32 {
		return nil, errors.New("JWT secret must be at least 32 bytes")
	}
	return &Keys{secret: secret, Now: time.Now}, nil
}

// KeyFile is the name of the signing key's file in the data directory.
const KeyFile = "jwt.key"

// LoadKeys returns the signing key: secret if given, else the one in
// dataDir/jwt.key. With create set and no key anywhere, it makes one there
// and reports created.
func LoadKeys(dataDir, secret string, create bool) (keys *Keys, created bool, err error) {
	if secret != "" {
		k, err := NewKeys([]byte(secret))
		return k, false, err
	}
	path := filepath.Join(dataDir, KeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		k, err := NewKeys(raw)
		return k, false, err
	}
	if !errors.Is(err, os.ErrNotExist) || !create {
		return nil, false, fmt.Errorf("no signing key: give --jwt-secret or start a node on this data directory first (%w)", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, false, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(raw)+"\n"), 0o600); err != nil {
		return nil, false, err
	}
	k, err := NewKeys(raw)
	return k, true, err
}

// Issue returns a signed token for p, valid for ttl.
func (k *Keys) Issue(p Principal, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", tenant.Errorf(tenant.EINVALID, "ttl must be positive")
	}
	if p.Perm < PermRead || p.Perm > PermAdmin {
		return "", tenant.Errorf(tenant.EINVALID, "invalid permission")
	}
	if len(p.Databases) == 0 {
		return "", tenant.Errorf(tenant.EINVALID, "a token needs at least one database (or *)")
	}
	for _, db := range p.Databases {
		if db != "*" {
			if err := tenant.ValidateName(db); err != nil {
				return "", err
			}
		}
	}
	now := k.Now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   p.Subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Databases: p.Databases,
		Perm:      p.Perm.String(),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(k.secret)
}

// Verify checks a token's signature, algorithm and expiry (which it must
// have) and returns its principal, or EUNAUTHORIZED.
func (k *Keys) Verify(token string) (*Principal, error) {
	k.mu.Lock()
	p, ok := k.verified[token]
	k.mu.Unlock()
	if ok && k.Now().Before(p.ExpiresAt) {
		return p, nil
	}
	p, err := k.verify(token)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	if k.verified == nil || len(k.verified) >= maxVerified {
		k.verified = map[string]*Principal{}
	}
	k.verified[token] = p
	k.mu.Unlock()
	return p, nil
}

func (k *Keys) verify(token string) (*Principal, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return k.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(k.Now),
	)
	if err != nil {
		msg := "invalid token"
		if errors.Is(err, jwt.ErrTokenExpired) {
			msg = "token expired"
		}
		return nil, tenant.Wrap(tenant.EUNAUTHORIZED, err, msg)
	}
	perm, err := ParsePerm(c.Perm)
	if err != nil {
		return nil, tenant.Errorf(tenant.EUNAUTHORIZED, "token has no valid permission")
	}
	return &Principal{Subject: c.Subject, Databases: c.Databases, Perm: perm, ExpiresAt: c.ExpiresAt.Time}, nil
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
