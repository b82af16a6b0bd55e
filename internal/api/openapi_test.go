package api

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"hasvc/internal/auth"
	"hasvc/internal/engine"
)

// loadOpenAPI parses and validates the OpenAPI document, its examples
// against their schemas included.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	// The check is real: a wrong example fails it.
	bad := strings.Replace(string(OpenAPI()), `"example": {"status": "ok"}`, `"example": {"status": 7}`, 1)
	if broken, err := openapi3.NewLoader().LoadFromData([]byte(bad)); err != nil || broken.Validate(context.Background(), openapi3.EnableExamplesValidation()) == nil {
		t.Fatalf("a wrong example passes validation (%v)", err)
	}
	return doc
}

// TestOpenAPIRoutes: every route the server registers is in the document,
// and every route the document names is registered.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	s := &Server{Auth: okVerifier{}, Logger: slog.New(slog.DiscardHandler),
		Metrics:   http.NotFoundHandler(),
		Revoke:    func(context.Context, string, string) (string, error) { return "", nil },
		Issue:     func(auth.Principal, time.Duration) (string, error) { return "", nil },
		Consumers: noConsumers{}}
	s.Handler()
	param := regexp.MustCompile(`:(\w+)`)
	registered := map[string]bool{}
	for _, r := range s.echo.Routes() {
		if r.Method == echo.RouteNotFound {
			continue // echo's own catch-all, not a route
		}
		path := param.ReplaceAllString(r.Path, "{$1}")
		path = strings.Replace(path, "/ui/*", "/ui/{file}", 1)
		registered[r.Method+" "+path] = true
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	var missing, extra []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !registered[r] {
			extra = append(extra, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 {
		t.Errorf("routes not in openapi.json: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("openapi.json documents routes that do not exist: %v", extra)
	}
	if len(registered) < 25 {
		t.Errorf("only %d routes registered: the comparison saw too little", len(registered))
	}
}

// noConsumers is a Consumers that is never called: the route test only
// registers routes.
type noConsumers struct{}

func (noConsumers) CreateConsumer(context.Context, string, string, uint64) (*engine.ConsumerInfo, error) {
	return nil, nil
}
func (noConsumers) DeleteConsumer(context.Context, string, string) error { return nil }
