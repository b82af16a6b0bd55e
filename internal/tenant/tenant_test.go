package tenant

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"mydb", true},
		{"my_db-2", true},
		{"a" + strings.Repeat("b", 62), true},
		{"a" + strings.Repeat("b", 63), false},
		{"", false},
		{"1db", false},
		{"_db", false},
		{"MyDB", false},
		{"my.db", false},
		{"my db", false},
		{"db*", false},
		{"db>", false},
		{"dé", false},
		{"db\x00", false},
	} {
		err := ValidateName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && ErrorCode(err) != EINVALID {
			t.Errorf("ValidateName(%q): code %s, want EINVALID", tc.name, ErrorCode(err))
		}
	}
}

// TestValidNameMatchesTheDocumentedPattern checks the hand-written check
// against the pattern the README documents, on every short string over a
// small alphabet.
func TestValidNameMatchesTheDocumentedPattern(t *testing.T) {
	re := regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	alphabet := []string{"a", "z", "0", "9", "_", "-", "A", ".", " ", "é"}
	var walk func(prefix string, depth int)
	walk = func(prefix string, depth int) {
		if got, want := validName(prefix), re.MatchString(prefix); got != want {
			t.Errorf("validName(%q) = %v, pattern says %v", prefix, got, want)
		}
		if depth == 0 {
			return
		}
		for _, c := range alphabet {
			walk(prefix+c, depth-1)
		}
	}
	walk("", 3)
}

func TestDerivedNames(t *testing.T) {
	if got := StreamName("my-db"); got != "HASVC_my-db" {
		t.Errorf("StreamName = %q", got)
	}
	if got := Subject("my-db"); got != "hasvc.db.my-db" {
		t.Errorf("Subject = %q", got)
	}
	if got := BucketName("my-db"); got != "hasvc_snap_my-db" {
		t.Errorf("BucketName = %q", got)
	}
}

func TestConfigNormalize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Config
		want Config
		bad  string
	}{
		{"defaults", Config{Name: "a"}, Config{Name: "a", Mode: ModeStrong, Replicas: 1}, ""},
		{"eventual", Config{Name: "a", Mode: ModeEventual, Replicas: 3}, Config{Name: "a", Mode: ModeEventual, Replicas: 3}, ""},
		{"bad mode", Config{Name: "a", Mode: "fast"}, Config{}, "invalid mode"},
		{"too many replicas", Config{Name: "a", Replicas: 6}, Config{}, "invalid replicas"},
		{"negative replicas", Config{Name: "a", Replicas: -1}, Config{}, "invalid replicas"},
		{"bad name", Config{Name: "A"}, Config{}, "invalid database name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in
			err := got.Normalize()
			if tc.bad != "" {
				if ErrorCode(err) != EINVALID || !strings.Contains(ErrorMessage(err), tc.bad) {
					t.Fatalf("got %v, want EINVALID %q", err, tc.bad)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	cause := errors.New("jetstream said something")
	err := Wrap(EUNAVAILABLE, cause, "replication unavailable")
	if ErrorCode(err) != EUNAVAILABLE || ErrorMessage(err) != "replication unavailable" || !errors.Is(err, cause) {
		t.Fatalf("Wrap: %v", err)
	}
	at := AtStatement(err, 3)
	if ErrorStatement(at) != 3 || ErrorStatement(err) != -1 {
		t.Fatalf("AtStatement changed the original or lost the index: %d %d", ErrorStatement(at), ErrorStatement(err))
	}
	plain := AtStatement(cause, 1)
	if ErrorCode(plain) != EINTERNAL || ErrorMessage(cause) != "internal error" {
		t.Fatalf("an uncoded error must be internal and hide its text: %v", plain)
	}
	if ErrorCode(nil) != "" || ErrorMessage(nil) != "" || ErrorStatement(nil) != -1 {
		t.Fatal("nil error")
	}
}

func TestAtStatementHidesInternalText(t *testing.T) {
	err := AtStatement(errors.New("capture t: column index out of range"), 2)
	if ErrorMessage(err) != "internal error" || ErrorStatement(err) != 2 || ErrorCode(err) != EINTERNAL {
		t.Fatalf("got %q at %d (%s)", ErrorMessage(err), ErrorStatement(err), ErrorCode(err))
	}
}

func TestConcurrency(t *testing.T) {
	c := NewConcurrency(2, 3, "requests")
	r1, err1 := c.Acquire("a", "t1")
	r2, err2 := c.Acquire("a", "t2")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := c.Acquire("a", "t3"); ErrorCode(err) != ETOOMANY {
		t.Fatalf("third on a database of two: %v", err)
	}
	r3, _ := c.Acquire("b", "t1")
	r4, _ := c.Acquire("c", "t1")
	if _, err := c.Acquire("d", "t1"); ErrorCode(err) != ETOOMANY {
		t.Fatalf("fourth of a token of three: %v", err)
	}
	r1()
	r1() // a second release changes nothing
	if _, err := c.Acquire("a", "t3"); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if _, err := c.Acquire("a", "t4"); ErrorCode(err) != ETOOMANY {
		t.Fatalf("a double release freed two places: %v", err)
	}
	r2()
	r3()
	r4()
}
