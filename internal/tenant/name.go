package tenant

import "fmt"

// ValidateName reports whether name is a valid database name:
// a lower-case letter, then up to 62 lower-case letters, digits, '_' or '-'.
// Every entry point calls it before any file, stream or bucket is touched.
func ValidateName(name string) error {
	if !validName(name) {
		return Errorf(EINVALID, "invalid database name %q: want a lower-case letter followed by up to 62 of [a-z0-9_-]", name)
	}
	return nil
}

// validName is ^[a-z][a-z0-9_-]{0,62}$, by hand: every request checks it.
func validName(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// The JetStream names of a database, derived from its name by one function
// each (the README lists them for CDC consumers). A valid database name holds
// no '.', '*', '>' or space, so each derived name is valid too.

// StreamName is the name of the stream that holds the database's change log.
func StreamName(db string) string { return "HASVC_" + db }

// Subject is the subject the database's changes are published on, one
// message per committed write transaction.
func Subject(db string) string { return "hasvc.db." + db }

// BucketName is the object-store bucket that holds the database's snapshots.
func BucketName(db string) string { return "hasvc_snap_" + db }

// Accounts is how many NATS accounts the embedded server spreads the
// databases' streams and buckets over. JetStream checks a new stream
// against every stream of its account (its subjects, its share of the
// account's limits), so with one account the n-th database took O(n) to
// create; spread over Accounts accounts, creation costs the same at
// 100,000 databases as at 100. Fixed for good: a database stays in the
// account it was created in.
const Accounts = 64

// AccountOf returns the NATS account of the embedded server that holds
// database db's stream and bucket when it is created: one of Accounts,
// chosen by a hash of the name (FNV-1a).
func AccountOf(db string) string {
	h := uint32(2166136261)
	for i := 0; i < len(db); i++ {
		h = (h ^ uint32(db[i])) * 16777619
	}
	return AccountName(int(h % Accounts))
}

// AccountName is the name of the i-th account of the databases.
func AccountName(i int) string { return fmt.Sprintf("HASVC_DBS_%02d", i) }

// IsAccount reports whether name is one of the databases' accounts.
func IsAccount(name string) bool {
	for i := range Accounts {
		if AccountName(i) == name {
			return true
		}
	}
	return false
}

// RegistryBucket is the KV bucket that holds one entry per database.
const RegistryBucket = "hasvc_databases"
