package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"hasvc/internal/fsutil"
	"hasvc/internal/tenant"
)

// Signing keys.
//
// A node verifies tokens against a set of keys, each named by a key id
// (the token's "kid" header) and signing with HS256 (a shared secret) or
// EdDSA (Ed25519: the nodes need only the public key). The first key
// with a private part signs new tokens. Rotating is: add the new key
// (verify-only where tokens are not issued) and reload every node
// (SIGHUP), issue with it, retire the old one when its tokens have
// expired or been replaced. A token without a kid (from before key ids,
// or from --jwt-secret) is tried against every key of its algorithm.
//
// The keys file has one key per line, "<kid> <alg> <key>": alg HS256 with
// a hex secret of at least 32 bytes, EdDSA with a base64 Ed25519 seed (32
// bytes; signs and verifies) or EdDSA-public with a base64 public key
// (verifies only). Blank lines and lines starting with # are ignored.

// key is one signing or verifying key.
type key struct {
	kid    string
	method jwt.SigningMethod
	secret []byte             // HS256
	priv   ed25519.PrivateKey // EdDSA, nil when verify-only
	pub    ed25519.PublicKey  // EdDSA
}

func (k *key) canSign() bool { return k.secret != nil || k.priv != nil }

func (k *key) signingKey() any {
	if k.secret != nil {
		return k.secret
	}
	return k.priv
}

func (k *key) verifyingKey() any {
	if k.secret != nil {
		return k.secret
	}
	return k.pub
}

// keySet is the keys in force; it is replaced whole on reload.
type keySet struct {
	keys   []*key
	signer *key // nil: this node verifies only
}

// Keys signs and verifies tokens.
type Keys struct {
	set  atomic.Pointer[keySet]
	Now  func() time.Time
	file string // the keys file Reload reads again, or ""
	// generation counts reloads: a holder of a verified token checks it
	// again only when the keys changed.
	generation atomic.Uint64

	// Revoked, when set, reports whether the token with this id has been
	// revoked; Verify refuses it.
	Revoked func(id string) bool

	// verified caches principals by token: clients send the same token
	// with every request, and parsing it costs more than the query. A
	// cached principal is used only until its token expires, and the cache
	// is cleared when the keys change.
	mu       sync.Mutex
	verified map[string]*Principal
}

// maxVerified bounds the verified-token cache; when full it starts over.
const maxVerified = 4096

// NewKeys returns Keys for one HS256 secret of at least 32 bytes, without
// a key id.
func NewKeys(secret []byte) (*Keys, error) {
	if len(secret) < 32 {
		return nil, errors.New("JWT secret must be at least 32 bytes")
	}
	k := &Keys{Now: time.Now}
	hs := &key{method: jwt.SigningMethodHS256, secret: secret}
	k.set.Store(&keySet{keys: []*key{hs}, signer: hs})
	return k, nil
}

// ParseKeys returns Keys from the text of a keys file.
func ParseKeys(text string) (*Keys, error) {
	set, err := parseKeySet(text)
	if err != nil {
		return nil, err
	}
	k := &Keys{Now: time.Now}
	k.set.Store(set)
	return k, nil
}

func parseKeySet(text string) (*keySet, error) {
	set := &keySet{}
	seen := map[string]bool{}
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		if seen[k.kid] {
			return nil, fmt.Errorf("line %d: key id %q given twice", n+1, k.kid)
		}
		seen[k.kid] = true
		set.keys = append(set.keys, k)
		if set.signer == nil && k.canSign() {
			set.signer = k
		}
	}
	if len(set.keys) == 0 {
		return nil, errors.New("no keys")
	}
	return set, nil
}

func parseKey(line string) (*key, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return nil, errors.New(`want "<kid> <alg> <key>"`)
	}
	k := &key{kid: f[0]}
	switch f[1] {
	case "HS256":
		secret, err := hex.DecodeString(f[2])
		if err != nil || len(secret) < 32 {
			return nil, errors.New("an HS256 key is a hex secret of at least 32 bytes")
		}
		k.method, k.secret = jwt.SigningMethodHS256, secret
	case "EdDSA":
		seed, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, errors.New("an EdDSA key is a base64 Ed25519 seed of 32 bytes")
		}
		k.method, k.priv = jwt.SigningMethodEdDSA, ed25519.NewKeyFromSeed(seed)
		k.pub = k.priv.Public().(ed25519.PublicKey)
	case "EdDSA-public":
		pub, err := base64.StdEncoding.DecodeString(f[2])
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, errors.New("an EdDSA-public key is a base64 Ed25519 public key of 32 bytes")
		}
		k.method, k.pub = jwt.SigningMethodEdDSA, ed25519.PublicKey(pub)
	default:
		return nil, fmt.Errorf("unknown algorithm %q: want HS256, EdDSA or EdDSA-public", f[1])
	}
	return k, nil
}

// NewKeyLine returns a new random key as lines of a keys file: the key
// itself, and for EdDSA the verify-only line for nodes that do not issue
// tokens.
func NewKeyLine(kid, alg string) (signing, verifyOnly string, err error) {
	if kid == "" || strings.ContainsAny(kid, " \t\n#") {
		return "", "", errors.New("a key id is one word")
	}
	switch alg {
	case "HS256":
		secret := make([]byte, 32)
		rand.Read(secret)
		return kid + " HS256 " + hex.EncodeToString(secret), "", nil
	case "EdDSA":
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return "", "", err
		}
		return kid + " EdDSA " + base64.StdEncoding.EncodeToString(priv.Seed()),
			kid + " EdDSA-public " + base64.StdEncoding.EncodeToString(pub), nil
	}
	return "", "", fmt.Errorf("unknown algorithm %q: want HS256 or EdDSA", alg)
}

// KeyFile is the name of the signing key's file in the data directory.
const KeyFile = "jwt.key"

// LoadKeys returns the keys: those of keysFile if given, else the secret
// if given, else the one in dataDir/jwt.key. With create set and no key
// anywhere, it makes one there and reports created.
func LoadKeys(dataDir, secret, keysFile string, create bool) (keys *Keys, created bool, err error) {
	if keysFile != "" {
		b, err := os.ReadFile(keysFile)
		if err != nil {
			return nil, false, err
		}
		k, err := ParseKeys(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", keysFile, err)
		}
		k.file = keysFile
		return k, false, nil
	}
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
		return nil, false, fmt.Errorf("no signing key: give --jwt-keys or --jwt-secret, or start a node on this data directory first (%w)", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, false, err
	}
	if err := fsutil.WriteFile(path, []byte(hex.EncodeToString(raw)+"\n"), 0o600); err != nil {
		return nil, false, err
	}
	k, err := NewKeys(raw)
	return k, true, err
}

// Reload reads the keys file again (a no-op without one). Tokens signed by
// keys no longer listed stop verifying at once.
func (k *Keys) Reload() error {
	if k.file == "" {
		return nil
	}
	b, err := os.ReadFile(k.file)
	if err != nil {
		return err
	}
	set, err := parseKeySet(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", k.file, err)
	}
	k.set.Store(set)
	k.mu.Lock()
	k.verified = nil
	k.mu.Unlock()
	k.generation.Add(1)
	return nil
}

// Generation changes whenever the keys do (Reload): a token verified
// under one generation stays valid, but for expiry and revocation, until
// the next.
func (k *Keys) Generation() uint64 { return k.generation.Load() }

// CanIssue reports whether the keys include one that signs.
func (k *Keys) CanIssue() bool { return k.set.Load().signer != nil }

// claims is a token's body.
type claims struct {
	jwt.RegisteredClaims
	Databases []string `json:"dbs"`
	Perm      string   `json:"perm"`
}

// Issue returns a signed token for p, valid for ttl, with a new id.
func (k *Keys) Issue(p Principal, ttl time.Duration) (string, error) {
	signer := k.set.Load().signer
	if signer == nil {
		return "", tenant.Errorf(tenant.EINVALID, "no signing key: the keys hold public keys only")
	}
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
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	now := k.Now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        hex.EncodeToString(id),
			Subject:   p.Subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Databases: p.Databases,
		Perm:      p.Perm.String(),
	}
	t := jwt.NewWithClaims(signer.method, c)
	if signer.kid != "" {
		t.Header["kid"] = signer.kid
	}
	return t.SignedString(signer.signingKey())
}

// Verify checks a token's signature, algorithm, expiry (which it must
// have) and revocation, and returns its principal, or EUNAUTHORIZED.
func (k *Keys) Verify(token string) (*Principal, error) {
	k.mu.Lock()
	p, ok := k.verified[token]
	k.mu.Unlock()
	if !ok || !k.Now().Before(p.ExpiresAt) {
		var err error
		if p, err = k.verify(token); err != nil {
			return nil, err
		}
		k.mu.Lock()
		if k.verified == nil || len(k.verified) >= maxVerified {
			k.verified = map[string]*Principal{}
		}
		k.verified[token] = p
		k.mu.Unlock()
	}
	if p.ID != "" && k.Revoked != nil && k.Revoked(p.ID) {
		return nil, tenant.Errorf(tenant.EUNAUTHORIZED, "token revoked")
	}
	return p, nil
}

// Parse verifies a token's signature (not its expiry or revocation) and
// returns its id and expiry: what revoking it needs.
func (k *Keys) Parse(token string) (id string, expires time.Time, err error) {
	var c claims
	_, err = jwt.ParseWithClaims(token, &c, k.keyFunc, jwt.WithValidMethods(methods), jwt.WithoutClaimsValidation())
	if err != nil {
		return "", time.Time{}, tenant.Wrap(tenant.EINVALID, err, "not a token of this service")
	}
	if c.ID == "" {
		return "", time.Time{}, tenant.Errorf(tenant.EINVALID, "the token has no id (it predates revocation): it cannot be revoked; retire its key instead")
	}
	if c.ExpiresAt != nil {
		expires = c.ExpiresAt.Time
	}
	return c.ID, expires, nil
}

// methods are the algorithms tokens may use.
var methods = []string{jwt.SigningMethodHS256.Alg(), jwt.SigningMethodEdDSA.Alg()}

// keyFunc picks the keys a token may have been signed with: the key its
// kid names, or without a kid every key of its algorithm.
func (k *Keys) keyFunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	for _, key := range k.set.Load().keys {
		if key.method.Alg() != t.Method.Alg() {
			continue
		}
		if kid != "" && key.kid == kid {
			return key.verifyingKey(), nil
		}
		if kid == "" {
			set.Keys = append(set.Keys, key.verifyingKey())
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("no key %q for %s", kid, t.Method.Alg())
	}
	return set, nil
}

func (k *Keys) verify(token string) (*Principal, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, k.keyFunc,
		jwt.WithValidMethods(methods),
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
	p := &Principal{Subject: c.Subject, Databases: c.Databases, Perm: perm, ExpiresAt: c.ExpiresAt.Time, ID: c.ID}
	if c.IssuedAt != nil {
		p.IssuedAt = c.IssuedAt.Time
	}
	return p, nil
}
