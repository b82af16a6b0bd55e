//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

// Built with -tags pprof (make build TAGS='sqlite_preupdate_hook pprof'),
// the node serves Go's profiler on HASVC_PPROF_ADDR (default
// 127.0.0.1:6060), for profiling under load. Release builds leave it out.
func init() {
	addr := os.Getenv("HASVC_PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	go http.ListenAndServe(addr, nil)
}
