package broker

import (
	"crypto/subtle"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"hasvc/internal/tenant"
)

// Who may use the embedded NATS server, and for what.
//
// The nodes connect with the node credential (user and password) and are
// users of the global account, where the registry and the nodes' own
// buckets live, or, as "<user>@<account>", of one of the tenant.Accounts
// accounts that hold the databases' streams and buckets (databases made
// before those accounts have theirs in the global account). Only nodes
// may publish, so only they can put a message into a database's stream.
//
// A tenant connects with a token (as the NATS token, or as the password)
// that names exactly one database X. It becomes a user of an account of
// its own for X, "DB_X", which holds nothing and reaches the account of
// X's stream only through service imports of the read-only JetStream requests on X's
// stream: stream and consumer info, consumer names, fetching the next
// messages of a pull consumer, acknowledging them, getting one message.
// Replies, deliveries and anything else it publishes stay inside DB_X.
// This matters beyond permissions: a JetStream request names where
// JetStream should send messages (the reply subject of a fetch, the
// deliver subject of a push consumer), and JetStream sends them from
// inside its own account. Had tenants been users of the stream's account,
// a fetch replying to "hasvc.db.Y" would have stored X's messages in Y's
// stream. The same reason keeps consumer creation out of the imports:
// a push consumer's deliver subject is a subject of the stream's account,
// so hasvc creates pull consumers for tenants over HTTP instead.
//
// Tenants of the same database share its account, so they can see each
// other's replies; they can read the same data anyway.

// Access is what a tenant's token grants on NATS.
type Access struct {
	Database string
	// Account is the account of the database's stream ("": the global
	// account).
	Account string
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
	accounts map[string]*server.Account // by database and its stream's account
}

// Check authenticates one client connection.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if user, account, found := strings.Cut(o.Username, "@"); user == a.user && o.Password != "" {
		if subtle.ConstantTimeCompare([]byte(o.Password), []byte(a.pass)) != 1 {
			return false
		}
		u := &server.User{Username: o.Username}
		if found {
			if !tenant.IsAccount(account) {
				return false
			}
			acc, err := a.ns().LookupAccount(account)
			if err != nil {
				return false
			}
			u.Account = acc
		}
		c.RegisterUser(u)
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
	acc, err := a.account(access.Database, access.Account)
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

// exportReadOnlyAPI exports the read-only requests from the accounts that
// hold streams, for the tenants' accounts to import.
func exportReadOnlyAPI(ns *server.Server) error {
	accounts := []*server.Account{ns.GlobalAccount()}
	for i := range tenant.Accounts {
		acc, err := ns.LookupAccount(tenant.AccountName(i))
		if err != nil {
			return err
		}
		accounts = append(accounts, acc)
	}
	for _, acc := range accounts {
		for _, api := range readOnlyAPI {
			subject := fmt.Sprintf(api.subject, "*")
			resp := server.Singleton
			if api.streamed {
				resp = server.Streamed
			}
			if err := acc.AddServiceExportWithResponse(subject, resp, nil); err != nil {
				return fmt.Errorf("export %s from %s: %w", subject, acc.Name, err)
			}
		}
	}
	return nil
}

// account returns the account of database db's tenants, made on first
// use, which imports from from, the account of db's stream ("": the
// global account).
func (a *authenticator) account(db, from string) (*server.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	name := "DB_" + db
	if from != "" {
		// A database made again under its old name may have moved from
		// the global account to its own.
		name += "_" + from
	}
	if acc := a.accounts[name]; acc != nil {
		return acc, nil
	}
	if err := tenant.ValidateName(db); err != nil {
		return nil, err
	}
	ns := a.ns()
	src := ns.GlobalAccount()
	if from != "" {
		if !tenant.IsAccount(from) {
			return nil, fmt.Errorf("no account %q", from)
		}
		var err error
		if src, err = ns.LookupAccount(from); err != nil {
			return nil, err
		}
	}
	acc, err := ns.RegisterAccount(name)
	if err != nil {
		return nil, err
	}
	stream := tenant.StreamName(db)
	for _, api := range readOnlyAPI {
		subject := fmt.Sprintf(api.subject, stream)
		if err := acc.AddServiceImport(src, subject, subject); err != nil {
			return nil, fmt.Errorf("import %s: %w", subject, err)
		}
	}
	if a.accounts == nil {
		a.accounts = map[string]*server.Account{}
	}
	a.accounts[name] = acc
	return acc, nil
}

// AccountUser is the NATS user name of the node credential's user in one
// of the databases' accounts.
func AccountUser(user, account string) string { return user + "@" + account }

// databaseAccounts returns the server's accounts: the databases'
// accounts, with JetStream, and the global account, whose JetStream the
// server no longer turns on by itself once there are other accounts.
// Only a configuration can give an account JetStream before the server
// starts (in a cluster it must have it before the server recovers the
// streams assigned to it); the global account's name is reserved in a
// configuration, so it is parsed under another name and renamed.
func databaseAccounts() ([]*server.Account, error) {
	const global = "HASVC_GLOBAL"
	var b strings.Builder
	b.WriteString("accounts {\n")
	fmt.Fprintf(&b, "  %s: { jetstream: enabled }\n", global)
	for i := range tenant.Accounts {
		fmt.Fprintf(&b, "  %s: { jetstream: enabled }\n", tenant.AccountName(i))
	}
	b.WriteString("}\n")
	var o server.Options
	if err := o.ProcessConfigString(b.String()); err != nil {
		return nil, fmt.Errorf("nats accounts: %w", err)
	}
	for _, acc := range o.Accounts {
		if acc.Name == global {
			acc.Name = server.DEFAULT_GLOBAL_ACCOUNT
		}
	}
	return o.Accounts, nil
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
