package sqlite

import (
	"encoding/json"
	"testing"

	"hasvc/internal/change"
)

// FuzzApply applies arbitrary change messages to a copy: a message either
// applies or fails with an error, and never panics or touches hasvc's own
// tables (apply runs as hasvc, so a message from outside must be refused
// before it gets here; this checks apply itself stays sound).
func FuzzApply(f *testing.F) {
	for _, s := range []string{
		`{"node":"a","changes":[{"database":"main","table":"t","columns":["id","v","n","p"],"operation":"INSERT","new_rowid":1,"new_values":[1,"x",1,null]}]}`,
		`{"node":"a","changes":[{"database":"main","table":"t","columns":["id","v","n","p"],"operation":"UPDATE","old_rowid":1,"new_rowid":2,"old_values":[1,"x",1,null],"new_values":[2,"y",2,null]}]}`,
		`{"node":"a","changes":[{"database":"main","table":"t","columns":["id"],"operation":"DELETE","old_rowid":5,"old_values":[5]}]}`,
		`{"node":"a","changes":[{"database":"main","operation":"SQL","sql":"CREATE TABLE u (a)"}]}`,
		`{"node":"a","changes":[{"database":"main","operation":"SQL","sql":"ATTACH 'x' AS y"}]}`,
		`{"node":"a","changes":[{"database":"main","table":"nope","columns":["a"],"operation":"INSERT","new_rowid":1,"new_values":[1]}]}`,
		`{"node":"a","changes":[{"database":"main","table":"t","columns":["id","v"],"operation":"INSERT","new_values":[1]}]}`,
		`{"node":"a","changes":[{"database":"main","table":"t","operation":"MERGE"}]}`,
		`{"node":"a","changes":[{"database":"main","table":"t","columns":["v"],"operation":"UPDATE","new_values":[{"text_base64":"/w=="}]}]}`,
		`{"node":"a","changes":[{"database":"main","table":"_hasvc_state","columns":["applied_seq"],"operation":"DELETE","old_rowid":1,"old_values":[0]}]}`,
		`{"node":"a","changes":[{"database":"temp","table":"t","columns":["id"],"operation":"INSERT","new_rowid":1,"new_values":[1]}]}`,
	} {
		f.Add([]byte(s))
	}
	c := openTest(f, Options{Tenant: true, Capture: true})
	if err := c.Internal(func() error { return c.Exec("INSERT INTO _hasvc_state VALUES (7)") }); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var msg change.Message
		if json.Unmarshal(data, &msg) != nil {
			return
		}
		if err := c.ApplyMode(true); err != nil {
			t.Fatal(err)
		}
		defer c.ApplyMode(false)
		if err := c.Internal(func() error { return c.Exec("SAVEPOINT fuzz") }); err != nil {
			t.Fatal(err)
		}
		c.ApplyChanges(msg.Changes, false)
		var state int64
		err := c.Internal(func() error {
			var err error
			state, err = c.QueryInt64("SELECT applied_seq FROM _hasvc_state")
			return err
		})
		if err != nil || state != 7 {
			t.Fatalf("a message touched hasvc's own table (%d, %v): %s", state, err, data)
		}
		c.Internal(func() error { return c.Exec("ROLLBACK TO fuzz; RELEASE fuzz") })
		c.RolledBack()
	})
}
