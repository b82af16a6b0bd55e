// Command delay is a TCP proxy that delays every byte by a fixed time in
// each direction, for measuring a cluster under link latency on one
// machine (bench/latency.sh): each node's cluster port sits behind one,
// and each node advertises its proxy, so routes between nodes (which NATS
// gossips) all cross a proxy.
//
//	delay -listen 127.0.0.1:7001 -to 127.0.0.1:6001 -delay 50ms
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"time"
)

func main() {
	listen := flag.String("listen", "", "address to listen on")
	to := flag.String("to", "", "address to forward to")
	delay := flag.Duration("delay", 50*time.Millisecond, "added to every byte, each way")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			up, err := net.Dial("tcp", *to)
			if err != nil {
				c.Close()
				return
			}
			go pipe(up, c, *delay)
			pipe(c, up, *delay)
		}()
	}
}

// chunk is what was read at a time, to be written delay later.
type chunk struct {
	data []byte
	at   time.Time
}

// pipe copies from src to dst, each read written delay after it was
// read, in order; it closes both ends when src ends.
func pipe(dst, src net.Conn, delay time.Duration) {
	q := make(chan chunk, 4096)
	go func() {
		defer dst.Close()
		for ch := range q {
			time.Sleep(time.Until(ch.at))
			if _, err := dst.Write(ch.data); err != nil {
				io.Copy(io.Discard, src)
				return
			}
		}
	}()
	defer close(q)
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{buf[:n], time.Now().Add(delay)}
		}
		if err != nil {
			return
		}
	}
}
