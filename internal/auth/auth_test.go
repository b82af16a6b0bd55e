package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"hasvc/internal/tenant"
)

func TestVerify(t *testing.T) {
	k, err := NewKeys([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	good, err := k.Issue(Principal{Subject: "ann", Databases: []string{"app"}, Perm: PermWrite}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Issued an hour ago for a minute: expired, with no sleep.
	k.Now = func() time.Time { return time.Now().Add(-time.Hour) }
	expired, _ := k.Issue(Principal{Subject: "ann", Databases: []string{"app"}, Perm: PermWrite}, time.Minute)
	k.Now = time.Now
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x", "dbs": []string{"*"}, "perm": "admin"}).SignedString([]byte(strings.Repeat("k", 32)))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "x", "dbs": []string{"*"}, "perm": "admin", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	other, _ := NewKeys([]byte(strings.Repeat("o", 32)))
	forged, _ := other.Issue(Principal{Subject: "eve", Databases: []string{"*"}, Perm: PermAdmin}, time.Hour)

	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"valid", good, true},
		{"expired", expired, false},
		{"no expiry", noExp, false},
		{"alg none", none, false},
		{"other key", forged, false},
		{"garbage", "abc.def.ghi", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := k.Verify(tt.token)
			if tt.ok != (err == nil) {
				t.Fatalf("Verify: err = %v, want ok = %v", err, tt.ok)
			}
			if err != nil && tenant.ErrorCode(err) != tenant.EUNAUTHORIZED {
				t.Fatalf("code = %s, want EUNAUTHORIZED", tenant.ErrorCode(err))
			}
			if tt.ok && (p.Subject != "ann" || p.Perm != PermWrite || !p.Covers("app") || p.Covers("other")) {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
}

func TestCan(t *testing.T) {
	p := &Principal{Databases: []string{"app"}, Perm: PermRead}
	if err := p.Can("app", PermRead); err != nil {
		t.Fatal(err)
	}
	if got := tenant.ErrorCode(p.Can("app", PermWrite)); got != tenant.EFORBIDDEN {
		t.Fatalf("read token writing: %s, want EFORBIDDEN", got)
	}
	if got := tenant.ErrorCode(p.Can("other", PermRead)); got != tenant.EFORBIDDEN {
		t.Fatalf("other database: %s, want EFORBIDDEN", got)
	}
	all := &Principal{Databases: []string{"*"}, Perm: PermAdmin}
	if err := all.Can("anything", PermAdmin); err != nil {
		t.Fatal(err)
	}
}
