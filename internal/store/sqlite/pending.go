package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"hash/maphash"
	"sync"
)

// pendingFilter answers most of UsersPending without a query: it holds
// every user that may have a pending inbox item or a topic subscription,
// so a user it does not hold has neither. Every login asks, and most
// users have nothing waiting; a query per login costs a read transaction
// (a shared-memory lock, a file size check and the statement) that the
// filter saves.
//
// The filter is exact for "nothing" only because this Store is the one
// writer of its file (a node holds its data directory's lock): it is
// loaded from the tables at Open, and PutInbox and Subscribe add their
// users before they write, so a user with a committed item or
// subscription is always in it. Users stay in it after their items are
// removed, until the node restarts (a query then answers "nothing"):
// dropping one safely would need to know that no write adding it is in
// flight or uncommitted in a caller's transaction. Users are held as
// 64-bit hashes (a collision only costs a query), about 16 bytes each.
type pendingFilter struct {
	seed  maphash.Seed
	mu    sync.RWMutex
	users map[uint64]struct{}
}

func newPendingFilter() *pendingFilter {
	return &pendingFilter{seed: maphash.MakeSeed(), users: map[uint64]struct{}{}}
}

// loadPendingFilter reads the users with a pending inbox item or a topic
// subscription from db.
func loadPendingFilter(ctx context.Context, db *sql.DB) (*pendingFilter, error) {
	f := newPendingFilter()
	rows, err := db.QueryContext(ctx,
		`SELECT DISTINCT user_id FROM inbox_items WHERE removed_at IS NULL
		 UNION SELECT DISTINCT user_id FROM topic_subscriptions`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: load pending users: %w", mapErr(err))
	}
	defer rows.Close()
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("sqlite: load pending users: %w", mapErr(err))
		}
		f.users[f.key(u)] = struct{}{}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: load pending users: %w", mapErr(err))
	}
	return f, nil
}

func (f *pendingFilter) key(user string) uint64 { return maphash.String(f.seed, user) }

// add notes users before a write that may give them something pending.
func (f *pendingFilter) add(users ...string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range users {
		f.users[f.key(u)] = struct{}{}
	}
}

// maybe sets out[i] to whether users[i] may have something pending
// (false: it has nothing) and reports whether any may. A nil filter
// knows nothing: every user may.
func (f *pendingFilter) maybe(users []string, out []bool) (some bool) {
	if f == nil {
		for i := range out {
			out[i] = true
		}
		return len(out) > 0
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	for i, u := range users {
		_, out[i] = f.users[f.key(u)]
		some = some || out[i]
	}
	return some
}
