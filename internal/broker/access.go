package broker

import (
	"crypto/subtle"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"hasvc/internal/tenant"
)

// Who may use the embedded NATS server, and for what.
//
// The nodes connect with the node credential (user and password) and are
// users of the global account, where every stream lives: they alone may
// publish, so only they can put a message into a database's stream.
//
// A tenant connects with a token (as the NATS token, or as the password)
// that names exactly one database X. It becomes a user of an account of
// its own for X, "DB_X", which holds nothing and reaches the global account
// only through service imports of the read-only JetStream requests on X's
// stream: stream and consumer info, consumer names, fetching the next
// messages of a pull consumer, acknowledging them, getting one message.
// Replies, deliveries and anything else it publishes stay inside DB_X.
// This matters beyond permissions: a JetStream request names where
// JetStream should send messages (the reply subject of a fetch, the
// deliver subject of a push consumer), and JetStream sends them from
// inside its own account. Had tenants been users of the global account, a
// fetch replying to "hasvc.db.Y" would have stored X's messages in Y's
// stream. The same reason keeps consumer creation out of the imports:
// a push consumer's deliver subject is a subject of the global account,
// so hasvc creates pull consumers for tenants over HTTP instead.
//
// Tenants of the same database share its account, so they can see each
// other's replies; they can read the same data anyway.

// Access is what a tenant's token grants on NATS.
type Access struct {
	Database string
	// ID names the token, for revocation (Disconnect).
	ID string
	// Expires is when the server closes the connection.
	Expires time.Time
}

// Authorizer verifies a tenant's token; an error refuses the connection.
type Authorizer func(token string) (*Access, error)

// authenticator implements the NATS server's custom client
// authentication: the node credential, or a tenant token.
type authenticator struct {
	ns        func() *server.Server
	user      string
	pass      string
	authorize Authorizer

	mu       sync.Mutex
	accounts map[string]*server.Account // by database
}

// Check authenticates one client connection.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if o.Username == a.user && o.Password != "" {
		if subtle.ConstantTimeCompare([]byte(o.Password), []byte(a.pass)) != 1 {
			return false
		}
		c.RegisterUser(&server.User{Username: a.user})
		return true
	}
	token := o.Token
	if token == "" {
		token = o.Password
	}
	if token == "" || a.authorize == nil {
		return false
	}
	access, err := a.authorize(token)
	if err != nil {
		return false
	}
	acc, err := a.account(access.Database)
	if err != nil {
		return false
	}
	c.RegisterUser(&server.User{
		Username:           tenantUser(access.ID),
		Account:            acc,
		ConnectionDeadline: access.Expires,
	})
	return true
}

// tenantUser is the NATS user name of a tenant's connection.
func tenantUser(id string) string { return "token:" + id }

// readOnlyAPI are the requests a tenant may make on its database's stream
// S (%[1]s), and whether JetStream may answer them with more than one
// message.
var readOnlyAPI = []struct {
	subject  string
	streamed bool
}{
	{"$JS.API.STREAM.INFO.%[1]s", false},
	{"$JS.API.STREAM.MSG.GET.%[1]s", false},
	{"$JS.API.CONSUMER.INFO.%[1]s.*", false},
	{"$JS.API.CONSUMER.NAMES.%[1]s", false},
	{"$JS.API.CONSUMER.LIST.%[1]s", false},
	{"$JS.API.CONSUMER.MSG.NEXT.%[1]s.*", true},
	{"$JS.ACK.%[1]s.>", false},
}

// exportReadOnlyAPI exports the read-only requests from the global
// account, for the databases' accounts to import.
func exportReadOnlyAPI(ns *server.Server) error {
	g := ns.GlobalAccount()
	for _, api := range readOnlyAPI {
		subject := fmt.Sprintf(api.subject, "*")
		resp := server.Singleton
		if api.streamed {
			resp = server.Streamed
		}
		if err := g.AddServiceExportWithResponse(subject, resp, nil); err != nil {
			return fmt.Errorf("export %s: %w", subject, err)
		}
	}
	return nil
}

// account returns the account of database db's tenants, made on first
// use.
func (a *authenticator) account(db string) (*server.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if acc := a.accounts[db]; acc != nil {
		return acc, nil
	}
	if err := tenant.ValidateName(db); err != nil {
		return nil, err
	}
	ns := a.ns()
	acc, err := ns.RegisterAccount("DB_" + db)
	if err != nil {
		return nil, err
	}
	stream := tenant.StreamName(db)
	for _, api := range readOnlyAPI {
		subject := fmt.Sprintf(api.subject, stream)
		if err := acc.AddServiceImport(ns.GlobalAccount(), subject, subject); err != nil {
			return nil, fmt.Errorf("import %s: %w", subject, err)
		}
	}
	if a.accounts == nil {
		a.accounts = map[string]*server.Account{}
	}
	a.accounts[db] = acc
	return acc, nil
}

// Disconnect closes every NATS connection made with token id.
func (s *Server) Disconnect(id string) error {
	conns, err := s.ns.Connz(&server.ConnzOptions{User: tenantUser(id), Limit: 1 << 16})
	if err != nil {
		return err
	}
	for _, c := range conns.Conns {
		s.ns.DisconnectClientByID(c.Cid)
	}
	return nil
}
