package main

import (
	"io"
	"net"
	"sync"
	"time"
)

// faultProxy carries the route (cluster) connections between nodes, so a
// test can cut, blackhole or slow each link. Each node advertises one
// listener of the proxy as its cluster address; the proxy tells the
// connecting node by its source address and forwards to the listener's
// node. A link is the unordered pair of two nodes: its state applies to
// every connection between them, whichever dialed.
type faultProxy struct {
	mu    sync.Mutex
	links map[[2]int]*linkState
	// source maps a connection's source IP to its node.
	source map[string]int
	lns    []net.Listener
}

// linkState is what happens to the bytes of a link.
type linkState struct {
	cut       bool          // connections closed, new ones refused
	blackhole bool          // bytes dropped, connections kept
	delay     time.Duration // added to every chunk, in order
	conns     map[net.Conn]bool
}

func newFaultProxy() *faultProxy {
	return &faultProxy{links: map[[2]int]*linkState{}, source: map[string]int{}}
}

func linkKey(a, b int) [2]int {
	if a > b {
		a, b = b, a
	}
	return [2]int{a, b}
}

func (fp *faultProxy) link(a, b int) *linkState {
	k := linkKey(a, b)
	l := fp.links[k]
	if l == nil {
		l = &linkState{conns: map[net.Conn]bool{}}
		fp.links[k] = l
	}
	return l
}

// serve forwards connections to ln to node dst at target.
func (fp *faultProxy) serve(ln net.Listener, dst int, target string) {
	fp.mu.Lock()
	fp.lns = append(fp.lns, ln)
	fp.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fp.carry(c, dst, target)
		}
	}()
}

func (fp *faultProxy) carry(in net.Conn, dst int, target string) {
	host, _, _ := net.SplitHostPort(in.RemoteAddr().String())
	fp.mu.Lock()
	src, known := fp.source[host]
	l := fp.link(src, dst)
	refuse := !known || l.cut
	fp.mu.Unlock()
	if refuse {
		in.Close()
		return
	}
	out, err := net.DialTimeout("tcp", target, 2*time.Second)
	if err != nil {
		in.Close()
		return
	}
	fp.mu.Lock()
	l.conns[in], l.conns[out] = true, true
	fp.mu.Unlock()
	done := make(chan struct{}, 2)
	go fp.pipe(l, in, out, done)
	go fp.pipe(l, out, in, done)
	<-done
	in.Close()
	out.Close()
	<-done
	fp.mu.Lock()
	delete(l.conns, in)
	delete(l.conns, out)
	fp.mu.Unlock()
}

// pipe copies from r to w as the link's state says, keeping the order of
// the chunks under a delay.
func (fp *faultProxy) pipe(l *linkState, r, w net.Conn, done chan<- struct{}) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	q := make(chan chunk, 1<<14)
	go func() {
		defer func() { done <- struct{}{} }()
		for c := range q {
			fp.mu.Lock()
			d := l.delay
			fp.mu.Unlock()
			time.Sleep(time.Until(c.at.Add(d)))
			if _, err := w.Write(c.b); err != nil {
				r.Close()
				for range q {
				}
				return
			}
		}
		w.Close()
	}()
	defer close(q)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			fp.mu.Lock()
			drop := l.blackhole
			fp.mu.Unlock()
			if !drop {
				q <- chunk{append([]byte(nil), buf[:n]...), time.Now()}
			}
		}
		if err != nil {
			if err != io.EOF {
				w.Close()
			}
			return
		}
	}
}

// set changes the state of the links between a and each of others; with
// cut, it closes their connections.
func (fp *faultProxy) set(a int, others []int, edit func(*linkState)) {
	fp.mu.Lock()
	var closing []net.Conn
	for _, b := range others {
		l := fp.link(a, b)
		edit(l)
		if l.cut {
			for c := range l.conns {
				closing = append(closing, c)
			}
		}
	}
	fp.mu.Unlock()
	for _, c := range closing {
		c.Close()
	}
}

// heal returns every link to normal.
func (fp *faultProxy) heal() {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	for _, l := range fp.links {
		l.cut, l.blackhole, l.delay = false, false, 0
	}
}

func (fp *faultProxy) close() {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	for _, ln := range fp.lns {
		ln.Close()
	}
	for _, l := range fp.links {
		for c := range l.conns {
			c.Close()
		}
	}
}
