package storetest

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/internal/store"
)

// BenchCreateAccount measures CreateAccount of new accounts, each with one
// device credential, on s; from GOMAXPROCS goroutines at once when
// parallel.
func BenchCreateAccount(b *testing.B, s store.Store, parallel bool) {
	ctx := b.Context()
	prefix := newID() + "-"
	var seq atomic.Uint64
	create := func() error {
		id := prefix + strconv.FormatUint(seq.Add(1), 10)
		_, err := s.CreateAccount(ctx,
			store.Account{ID: id, Username: id},
			store.Credential{Kind: store.CredentialDevice, Subject: id})
		return err
	}
	b.ReportAllocs()
	if !parallel {
		for b.Loop() {
			if err := create(); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := create(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchCredentialLookup measures Credential, the lookup behind every login,
// on s holding a few hundred accounts; from GOMAXPROCS goroutines at once
// when parallel.
func BenchCredentialLookup(b *testing.B, s store.Store, parallel bool) {
	const accounts = 256
	ctx := b.Context()
	subjects := make([]string, accounts)
	for i := range subjects {
		id := newID()
		subjects[i] = fmt.Sprintf("device-%d-%s", i, id)
		if _, err := s.CreateAccount(ctx,
			store.Account{ID: id, Username: "bench-" + id},
			store.Credential{Kind: store.CredentialDevice, Subject: subjects[i]}); err != nil {
			b.Fatal(err)
		}
	}
	lookup := func(i uint64) error {
		_, err := s.Credential(ctx, store.CredentialDevice, subjects[i%accounts])
		return err
	}
	b.ReportAllocs()
	if !parallel {
		var i uint64
		for b.Loop() {
			if err := lookup(i); err != nil {
				b.Fatal(err)
			}
			i++
		}
		return
	}
	var worker atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Start each goroutine elsewhere in the set.
		i := worker.Add(1) * 37
		for pb.Next() {
			if err := lookup(i); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchLoginLookup measures what a device login asks the store on s
// holding a few hundred accounts: with joined, the one CredentialAccount
// query; without, Credential then Account (two queries, as logins did
// before CredentialAccount existed).
func BenchLoginLookup(b *testing.B, s store.Store, joined bool) {
	const accounts = 256
	ctx := b.Context()
	subjects := make([]string, accounts)
	for i := range subjects {
		id := newID()
		subjects[i] = fmt.Sprintf("device-%d-%s", i, id)
		if _, err := s.CreateAccount(ctx,
			store.Account{ID: id, Username: "bench-" + id},
			store.Credential{Kind: store.CredentialDevice, Subject: subjects[i]}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var i int
	for b.Loop() {
		subject := subjects[i%accounts]
		i++
		if joined {
			if _, _, err := s.CredentialAccount(ctx, store.CredentialDevice, subject); err != nil {
				b.Fatal(err)
			}
			continue
		}
		c, err := s.Credential(ctx, store.CredentialDevice, subject)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Account(ctx, c.AccountID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchPutInbox measures PutInbox of batches of 100 new items on s: one
// item for each of 100 users (a notification sent to many users) when
// spread, otherwise 100 items for one user. It reports items/s.
func BenchPutInbox(b *testing.B, s store.Store, spread bool) {
	const batch = 100
	ctx := b.Context()
	prefix := newID() + "-"
	items := make([]store.InboxItem, batch)
	content := make([]byte, 200)
	var n int
	b.ReportAllocs()
	for b.Loop() {
		n++
		for i := range items {
			user := prefix + "user"
			if spread {
				user = prefix + strconv.Itoa(i)
			}
			items[i] = store.InboxItem{
				UserID: user, ID: strconv.Itoa(n) + "-" + strconv.Itoa(i), Subject: "bench",
				Content: content, ContentType: "application/json", Sender: "system",
			}
		}
		inserted, err := s.PutInbox(ctx, items)
		if err != nil {
			b.Fatal(err)
		}
		if !inserted[batch-1] {
			b.Fatal("PutInbox: last item not inserted")
		}
	}
	b.ReportMetric(float64(n*batch)/b.Elapsed().Seconds(), "items/s")
}

// BenchInbox measures Inbox listing the first page (DefaultLimit items)
// of a user holding 1 000 pending items and 1 000 acknowledged ones, among
// 100 other users holding 100 items each.
func BenchInbox(b *testing.B, s store.Store) {
	ctx := b.Context()
	const user = "bench-user"
	put := func(items []store.InboxItem) {
		if _, err := s.PutInbox(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
	content := make([]byte, 200)
	var acked []string
	for round := range 20 {
		var items []store.InboxItem
		for i := range 100 {
			id := fmt.Sprintf("r%02d-%03d", round, i)
			items = append(items, store.InboxItem{UserID: user, ID: id, Subject: "bench", Content: content})
			if round%2 == 0 {
				acked = append(acked, id)
			}
		}
		put(items)
	}
	if _, err := s.AckInbox(ctx, user, acked, time.Now()); err != nil {
		b.Fatal(err)
	}
	for u := range 100 {
		var items []store.InboxItem
		for i := range 100 {
			items = append(items, store.InboxItem{UserID: fmt.Sprintf("other-%03d", u), ID: strconv.Itoa(i), Subject: "bench", Content: content})
		}
		put(items)
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		items, next, err := s.Inbox(ctx, user, now, store.Page{})
		if err != nil {
			b.Fatal(err)
		}
		if len(items) != store.DefaultLimit || next == "" {
			b.Fatalf("Inbox: %d items, next %q; want a full page and a cursor", len(items), next)
		}
	}
}

// BenchLoginLookupFresh measures CredentialAccount as the socket gateway
// runs it: each login on a new goroutine, whose stack starts small.
func BenchLoginLookupFresh(b *testing.B, s store.Store) {
	const accounts = 256
	ctx := b.Context()
	subjects := make([]string, accounts)
	for i := range subjects {
		id := newID()
		subjects[i] = fmt.Sprintf("device-%d-%s", i, id)
		if _, err := s.CreateAccount(ctx,
			store.Account{ID: id, Username: "bench-" + id},
			store.Credential{Kind: store.CredentialDevice, Subject: subjects[i]}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	errs := make(chan error)
	var i int
	for b.Loop() {
		subject := subjects[i%accounts]
		i++
		go func() {
			_, _, err := s.CredentialAccount(ctx, store.CredentialDevice, subject)
			errs <- err
		}()
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchUsersPending measures UsersPending for batches of users who have
// nothing pending (the common login) among users who have items and
// topics; b.N counts users checked.
func BenchUsersPending(b *testing.B, s store.Store, batch int) {
	ctx := b.Context()
	if _, err := s.PutTopic(ctx, store.Topic{Name: "bench"}); err != nil {
		b.Fatal(err)
	}
	var busy []string
	for u := range 1000 {
		busy = append(busy, fmt.Sprintf("busy-%04d", u))
		if _, err := s.PutInbox(ctx, []store.InboxItem{{UserID: busy[u], ID: "1", Subject: "bench"}}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.Subscribe(ctx, "bench", busy); err != nil {
		b.Fatal(err)
	}
	users := make([]string, batch)
	for i := range users {
		users[i] = fmt.Sprintf("idle-%04d", i)
	}
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		pending, err := s.UsersPending(ctx, users, now)
		if err != nil || len(pending) != batch || pending[0] != (store.Pending{}) {
			b.Fatalf("UsersPending = %v, %v", pending, err)
		}
	}
}
