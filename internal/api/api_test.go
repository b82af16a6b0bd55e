package api

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"hasvc/internal/auth"
	"hasvc/internal/tenant"
)

// okVerifier accepts the token "good" as an admin's.
type okVerifier struct{}

func (okVerifier) Verify(token string) (*auth.Principal, error) {
	if token != "good" {
		return nil, tenant.Errorf(tenant.EUNAUTHORIZED, "bad token")
	}
	return &auth.Principal{Subject: "t", Databases: []string{"*"}, Perm: auth.PermAdmin, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

// TestCleartextTokens: over plain HTTP a bearer token is taken only from
// loopback unless AllowCleartext; over TLS from anywhere.
func TestCleartextTokens(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remote string
		tls    bool
		allow  bool
		wantOK bool
	}{
		{"loopback v4", "127.0.0.1:5000", false, false, true},
		{"loopback v6", "[::1]:5000", false, false, true},
		{"network", "192.0.2.7:5000", false, false, false},
		{"network with tls", "192.0.2.7:5000", true, false, true},
		{"network allowed", "192.0.2.7:5000", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{Auth: okVerifier{}, Logger: slog.New(slog.DiscardHandler), AllowCleartext: tc.allow,
				Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })}
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.RemoteAddr = tc.remote
			req.Header.Set("Authorization", "Bearer good")
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if got := rec.Code == 200; got != tc.wantOK {
				t.Fatalf("status %d %s, want ok=%v", rec.Code, rec.Body, tc.wantOK)
			}
		})
	}
}
