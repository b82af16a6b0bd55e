package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version, commit and buildDate may be set at link time (-ldflags "-X
// main.version=..."); otherwise they come from what the Go toolchain
// records in the binary (the module's version, and the git commit and
// time of a build in a checkout).
var version, commit, buildDate string

// buildInfo returns the binary's version, commit and build date
// ("unknown" where nothing recorded them).
func buildInfo() (v, c, d string) {
	v, c, d = version, commit, buildDate
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.time":
				if d == "" {
					d = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && c != "" && !strings.HasSuffix(c, "-dirty") {
			c += "-dirty"
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	}
	if d == "" {
		d = "unknown"
	}
	return v, c, d
}

// versionLine is what hasvc version prints.
func versionLine() string {
	v, c, d := buildInfo()
	return fmt.Sprintf("hasvc %s (commit %s, built %s, %s)", v, c, d, runtime.Version())
}

// wantsVersion reports whether the command line asks for the version.
func wantsVersion(args []string) bool {
	if len(args) > 0 && args[0] == "version" {
		return true
	}
	for _, a := range args {
		if a == "--version" || a == "-version" {
			return true
		}
	}
	return false
}
