package gateway

import (
	"sync"
	"sync/atomic"
)

// connTable holds every open socket, sharded so that the socket loops'
// lookups, accepts, closes and the sweeper rarely meet on one lock. It is
// the only index of sockets: the epoll loops look sockets up here too.
type connTable struct {
	shards [64]connShard
	n      atomic.Int64
}

type connShard struct {
	mu sync.Mutex
	m  map[uint64]*conn // guarded by mu
}

func (t *connTable) shard(id uint64) *connShard { return &t.shards[id%uint64(len(t.shards))] }

func (t *connTable) add(c *conn) {
	s := t.shard(c.id)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[uint64]*conn)
	}
	if _, dup := s.m[c.id]; !dup {
		t.n.Add(1)
	}
	s.m[c.id] = c
	s.mu.Unlock()
}

func (t *connTable) get(id uint64) *conn {
	s := t.shard(id)
	s.mu.Lock()
	c := s.m[id]
	s.mu.Unlock()
	return c
}

func (t *connTable) remove(c *conn) {
	s := t.shard(c.id)
	s.mu.Lock()
	if s.m[c.id] == c {
		delete(s.m, c.id)
		t.n.Add(-1)
	}
	s.mu.Unlock()
}

func (t *connTable) len() int { return int(t.n.Load()) }

// each calls fn for every socket, one shard at a time; fn must not call
// back into the table.
func (t *connTable) each(fn func(*conn)) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, c := range s.m {
			fn(c)
		}
		s.mu.Unlock()
	}
}

// all returns a snapshot of the sockets.
func (t *connTable) all() []*conn {
	out := make([]*conn, 0, t.len())
	t.each(func(c *conn) { out = append(out, c) })
	return out
}
