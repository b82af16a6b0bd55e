package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"hasvc/internal/auth"
)

// runToken implements "hasvc token": it prints a token, and only the
// token, on stdout. It finds the signing key as a node does.
func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hasvc token", flag.ContinueOnError)
	fs.SetOutput(helpOutput(args, stdout, stderr))
	dbs := fs.String("db", "", "databases the token may use, comma-separated, or * for all")
	perm := fs.String("perm", "read", "read, write or admin")
	nats := fs.Bool("nats", false, "a read token for one database's change stream over NATS (the NATS token)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	sub := fs.String("sub", "user", "subject the token names")
	dataDir := fs.String("data-dir", or(getenv("HA_DATA_DIR"), "./data"), "data directory holding jwt.key (HA_DATA_DIR)")
	secret := fs.String("jwt-secret", getenv("HA_JWT_SECRET"), "signing secret, if the node uses one (HA_JWT_SECRET)")
	keysFile := fs.String("jwt-keys", getenv("HA_JWT_KEYS"), "keys file, if the node uses one; its first signing key signs (HA_JWT_KEYS)")
	if err := fs.Parse(args); err != nil {
		return helpStatus(err)
	}
	if *dbs == "" {
		fmt.Fprintln(stderr, "hasvc token: --db is required (a name, a comma-separated list, or *)")
		return 2
	}
	p, err := auth.ParsePerm(*perm)
	if err != nil {
		fmt.Fprintln(stderr, "hasvc token:", err)
		return 2
	}
	var names []string
	for _, n := range strings.Split(*dbs, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if *nats {
		if len(names) != 1 || names[0] == "*" {
			fmt.Fprintln(stderr, "hasvc token: --nats needs --db with exactly one database name")
			return 2
		}
		p = auth.PermRead
	}
	keys, _, err := auth.LoadKeys(*dataDir, *secret, *keysFile, false)
	if err != nil {
		fmt.Fprintln(stderr, "hasvc token:", err)
		return 1
	}
	tok, err := keys.Issue(auth.Principal{Subject: *sub, Databases: names, Perm: p}, *ttl)
	if err != nil {
		fmt.Fprintln(stderr, "hasvc token:", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// runKeygen implements "hasvc keygen": it prints a new key as lines of a
// keys file (--jwt-keys).
func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hasvc keygen", flag.ContinueOnError)
	fs.SetOutput(helpOutput(args, stdout, stderr))
	kid := fs.String("kid", "", "the key's id, one word (required)")
	alg := fs.String("alg", "EdDSA", "EdDSA or HS256")
	if err := fs.Parse(args); err != nil {
		return helpStatus(err)
	}
	signing, verifyOnly, err := auth.NewKeyLine(*kid, *alg)
	if err != nil {
		fmt.Fprintln(stderr, "hasvc keygen:", err)
		return 2
	}
	fmt.Fprintln(stdout, "# signing key: for the nodes and hosts that issue tokens (hasvc token); keep it secret")
	fmt.Fprintln(stdout, signing)
	if verifyOnly != "" {
		fmt.Fprintln(stdout, "# the same key, verify-only: for nodes that only check tokens")
		fmt.Fprintln(stdout, "# "+verifyOnly)
	}
	return 0
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// helpOutput is where a command's flag set writes: its help goes to
// stdout when asked for (-h, --help), its errors to stderr.
func helpOutput(args []string, stdout, stderr io.Writer) io.Writer {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			return stdout
		}
	}
	return stderr
}

// helpStatus is a command's exit status after its flags failed to parse:
// 0 when help was asked for.
func helpStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
