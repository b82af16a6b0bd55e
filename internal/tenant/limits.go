package tenant

import "sync"

// Concurrency counts what a database and a token are doing at once
// (requests, or connections), so that one tenant cannot take every
// reader, writer slot or connection of a node. The zero value is not
// usable: make one with NewConcurrency.
type Concurrency struct {
	perDB, perToken int
	what            string // "requests" or "connections", for the error

	mu     sync.Mutex
	dbs    map[string]int
	tokens map[string]int
}

// NewConcurrency allows perDB at once for each database and perToken for
// each token (0: no limit); what names the counted thing in errors.
func NewConcurrency(perDB, perToken int, what string) *Concurrency {
	return &Concurrency{perDB: perDB, perToken: perToken, what: what, dbs: map[string]int{}, tokens: map[string]int{}}
}

// Acquire counts one more for db and token, or returns ETOOMANY; call the
// returned release when done.
func (c *Concurrency) Acquire(db, token string) (release func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.perDB > 0 && c.dbs[db] >= c.perDB:
		return nil, Errorf(ETOOMANY, "database %q is serving %d %s at once, its limit; try again", db, c.perDB, c.what)
	case c.perToken > 0 && c.tokens[token] >= c.perToken:
		return nil, Errorf(ETOOMANY, "this token has %d %s open at once, its limit; try again", c.perToken, c.what)
	}
	c.dbs[db]++
	c.tokens[token]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.dbs[db]--; c.dbs[db] == 0 {
				delete(c.dbs, db)
			}
			if c.tokens[token]--; c.tokens[token] == 0 {
				delete(c.tokens, token)
			}
		})
	}, nil
}
