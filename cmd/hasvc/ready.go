package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runReady implements "hasvc ready": it asks a node's /readyz and exits 0
// when the node can serve writes, 1 otherwise, printing the reason. It is
// the container image's HEALTHCHECK, which has no curl; by default it
// asks the node of this machine on the port HA_PORT names (8080).
func runReady(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hasvc ready", flag.ContinueOnError)
	fs.SetOutput(helpOutput(args, stdout, stderr))
	scheme := "http"
	if getenv("HA_TLS_CERT") != "" {
		scheme = "https"
	}
	url := fs.String("url", scheme+"://127.0.0.1:"+or(getenv("HA_PORT"), "8080"), "the node's HTTP address")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return helpStatus(err)
	}
	client := &http.Client{Timeout: *timeout, Transport: &http.Transport{
		// Only readiness is asked, with no token: a node's own
		// certificate need not name 127.0.0.1.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}}
	resp, err := client.Get(strings.TrimSuffix(*url, "/") + "/readyz")
	if err != nil {
		fmt.Fprintln(stderr, "hasvc ready:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintln(stdout, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
