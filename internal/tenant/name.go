package tenant

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

// RegistryBucket is the KV bucket that holds one entry per database.
const RegistryBucket = "hasvc_databases"
