package engine

import (
	"container/list"
	"sync"
)

// writeTexts remembers the SQL texts of recent requests that wrote, so a
// request starting with one goes to the writer without a try on a reader.
// It holds at most max texts, dropping the least recently used: a tenant
// that sends a new literal in every statement must not grow the node's
// memory.
type writeTexts struct {
	mu    sync.Mutex
	max   int
	order *list.List // of string, most recent first
	index map[string]*list.Element
}

// defaultWriteTexts is how many write texts a database remembers.
const defaultWriteTexts = 1024

func newWriteTexts(max int) *writeTexts {
	return &writeTexts{max: max, order: list.New(), index: map[string]*list.Element{}}
}

// has reports whether sql is a remembered write text.
func (w *writeTexts) has(sql string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.index[sql]
	if ok {
		w.order.MoveToFront(e)
	}
	return ok
}

// add remembers sql.
func (w *writeTexts) add(sql string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e, ok := w.index[sql]; ok {
		w.order.MoveToFront(e)
		return
	}
	w.index[sql] = w.order.PushFront(sql)
	for w.order.Len() > w.max {
		last := w.order.Back()
		w.order.Remove(last)
		delete(w.index, last.Value.(string))
	}
}

// len returns how many texts are remembered.
func (w *writeTexts) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.order.Len()
}
