package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/internal/store"
)

// t0 is the "now" the notification tests pass to the store.
var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// item returns a pending inbox item of user with id, created at t0.
func item(user, id string) store.InboxItem {
	return store.InboxItem{
		UserID: user, ID: id, Subject: "subject " + id, Content: []byte("content " + id),
		ContentType: "text/plain", Sender: "system", CreatedAt: t0,
	}
}

func mustPutInbox(t *testing.T, s store.Store, items ...store.InboxItem) []bool {
	t.Helper()
	inserted, err := s.PutInbox(t.Context(), items)
	if err != nil {
		t.Fatalf("PutInbox: got error %v, want nil", err)
	}
	if len(inserted) != len(items) {
		t.Fatalf("PutInbox: got %d results for %d items", len(inserted), len(items))
	}
	return inserted
}

// listInbox reads a user's whole inbox at now, page by page.
func listInbox(t *testing.T, s store.Store, user string, now time.Time, limit int) []store.InboxItem {
	t.Helper()
	var all []store.InboxItem
	cursor := ""
	for range 10000 {
		items, next, err := s.Inbox(t.Context(), user, now, store.Page{Cursor: cursor, Limit: limit})
		if err != nil {
			t.Fatalf("Inbox(%q, cursor %q): got error %v, want nil", user, cursor, err)
		}
		if next != "" && len(items) != limit {
			t.Errorf("Inbox(%q): got %d items and a next cursor, want a full page of %d", user, len(items), limit)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		cursor = next
	}
	t.Fatalf("Inbox(%q): cursors never end", user)
	return nil
}

// inboxIDs returns the ids of items, checking their Seq increases.
func inboxIDs(t *testing.T, what string, items []store.InboxItem) []string {
	t.Helper()
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
		if i > 0 && it.Seq <= items[i-1].Seq {
			t.Errorf("%s: item %d (%s) has Seq %d after Seq %d, want increasing", what, i, it.ID, it.Seq, items[i-1].Seq)
		}
	}
	return ids
}

func checkIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func checkInt(t *testing.T, what string, got, want int) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %d, want %d", what, got, want)
	}
}

func testInboxRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	tokyo := time.FixedZone("JST", 9*60*60)
	items := []store.InboxItem{
		{
			UserID: "alice", ID: "n1", Subject: "purchase.ready", Content: []byte{0, 1, 2, 0xff},
			ContentType: "", Sender: "shop",
			CreatedAt: time.Date(2026, 11, 30, 21, 0, 0, 123456789, tokyo),
			ExpiresAt: time.Date(2026, 12, 30, 21, 0, 0, 987654321, tokyo),
		},
		{UserID: "alice", ID: "n2", Subject: "", Content: nil, ContentType: "application/json", Sender: "bob", CreatedAt: t0},
		{UserID: "alice", ID: "ünïcode id with spaces", Subject: "本因坊", Content: []byte(`{"a":1}`), ContentType: "application/json"},
	}
	before := time.Now()
	inserted := mustPutInbox(t, s, items...)
	after := time.Now()
	if !slices.Equal(inserted, []bool{true, true, true}) {
		t.Errorf("PutInbox: inserted = %v, want all true", inserted)
	}
	got, next, err := s.Inbox(ctx, "alice", t0, store.Page{})
	checkErr(t, "Inbox", err, nil)
	if next != "" {
		t.Errorf("Inbox: next = %q, want \"\"", next)
	}
	if len(got) != len(items) {
		t.Fatalf("Inbox: got %d items, want %d", len(got), len(items))
	}
	inboxIDs(t, "Inbox", got)
	for i, want := range items {
		g := got[i]
		checkStoredTime(t, "CreatedAt", g.CreatedAt)
		checkStoredTime(t, "ExpiresAt", g.ExpiresAt)
		wantCreated := store.Timestamp(want.CreatedAt)
		if want.CreatedAt.IsZero() {
			checkTime(t, "CreatedAt of an item sent without one", g.CreatedAt, before, after)
			wantCreated = g.CreatedAt
		}
		if g.UserID != want.UserID || g.ID != want.ID || g.Subject != want.Subject ||
			!bytes.Equal(g.Content, want.Content) || g.ContentType != want.ContentType || g.Sender != want.Sender ||
			!g.CreatedAt.Equal(wantCreated) || !g.ExpiresAt.Equal(store.Timestamp(want.ExpiresAt)) {
			t.Errorf("Inbox item %d:\n got %+v\nwant %+v", i, g, want)
		}
	}
	n, err := s.CountInbox(ctx, "alice", t0)
	checkErr(t, "CountInbox", err, nil)
	checkInt(t, "CountInbox", n, 3)

	// Other users see nothing of it.
	got, _, err = s.Inbox(ctx, "bob", t0, store.Page{})
	checkErr(t, "Inbox(bob)", err, nil)
	if got == nil || len(got) != 0 {
		t.Errorf("Inbox(bob) = %v, want an empty, non-nil slice", got)
	}
}

func testInboxOrderAndPages(t *testing.T, s store.Store) {
	ctx := t.Context()
	var want []string
	// Interleave users and batches: each user's order is the put order.
	for b := range 5 {
		var batch []store.InboxItem
		for i := range 5 {
			id := fmt.Sprintf("z-%02d", 24-(b*5+i)) // ids sort against put order
			batch = append(batch, item("alice", id), item("bob", id))
			want = append(want, id)
		}
		mustPutInbox(t, s, batch...)
	}
	for _, limit := range []int{1, 3, 10, 25, 0, 1000} {
		got := inboxIDs(t, fmt.Sprintf("Inbox(limit %d)", limit), listInbox(t, s, "alice", t0, limit))
		checkIDs(t, fmt.Sprintf("Inbox(alice, limit %d)", limit), got, want)
	}

	// Items put while a listing is in progress show up in its later pages.
	page, next, err := s.Inbox(ctx, "bob", t0, store.Page{Limit: 20})
	checkErr(t, "Inbox(bob, first page)", err, nil)
	if len(page) != 20 || next == "" {
		t.Fatalf("Inbox(bob, first page): got %d items, next %q; want 20 and a cursor", len(page), next)
	}
	mustPutInbox(t, s, item("bob", "late-1"), item("bob", "late-2"))
	rest, next, err := s.Inbox(ctx, "bob", t0, store.Page{Cursor: next, Limit: 20})
	checkErr(t, "Inbox(bob, second page)", err, nil)
	if next != "" {
		t.Errorf("Inbox(bob, second page): next = %q, want \"\"", next)
	}
	checkIDs(t, "Inbox(bob, second page)", inboxIDs(t, "second page", rest), append(slices.Clone(want[20:]), "late-1", "late-2"))

	// An acknowledged item on a page boundary does not break the cursor.
	first, next, err := s.Inbox(ctx, "alice", t0, store.Page{Limit: 2})
	checkErr(t, "Inbox(alice, limit 2)", err, nil)
	if _, err := s.AckInbox(ctx, "alice", []string{first[1].ID, want[2]}, t0); err != nil {
		t.Fatalf("AckInbox: %v", err)
	}
	rest, _, err = s.Inbox(ctx, "alice", t0, store.Page{Cursor: next, Limit: 2})
	checkErr(t, "Inbox(alice, after ack)", err, nil)
	checkIDs(t, "Inbox(alice, page after an acknowledged boundary)", inboxIDs(t, "", rest), want[3:5])

	for _, cursor := range []string{"not a cursor", store.EncodeCursor("a", "b"), store.EncodeCursor("x"), store.EncodeCursor("-1")} {
		_, _, err := s.Inbox(ctx, "alice", t0, store.Page{Cursor: cursor})
		checkErr(t, fmt.Sprintf("Inbox(cursor %q)", cursor), err, store.ErrBadCursor)
	}
	if _, _, err := s.Inbox(ctx, "alice", t0, store.Page{Limit: -1}); err == nil {
		t.Error("Inbox(limit -1): got nil error")
	}
}

func testInboxExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := func(id string, expires time.Time) store.InboxItem {
		it := item("alice", id)
		it.ExpiresAt = expires
		return it
	}
	mustPutInbox(t, s,
		at("never", time.Time{}),
		at("past", t0.Add(-time.Hour)),
		at("now", t0),
		at("in-1ms", t0.Add(time.Millisecond)),
		at("in-1h", t0.Add(time.Hour)),
	)
	tests := []struct {
		now  time.Time
		want []string
	}{
		{t0.Add(-2 * time.Hour), []string{"never", "past", "now", "in-1ms", "in-1h"}},
		{t0.Add(-time.Millisecond), []string{"never", "now", "in-1ms", "in-1h"}},
		{t0, []string{"never", "in-1ms", "in-1h"}},
		{t0.Add(time.Millisecond), []string{"never", "in-1h"}},
		{t0.Add(24 * time.Hour), []string{"never"}},
	}
	for _, tt := range tests {
		what := fmt.Sprintf("Inbox at %s", tt.now.Sub(t0))
		checkIDs(t, what, inboxIDs(t, what, listInbox(t, s, "alice", tt.now, 2)), tt.want)
		n, err := s.CountInbox(ctx, "alice", tt.now)
		checkErr(t, "CountInbox", err, nil)
		checkInt(t, "Count"+what, n, len(tt.want))
	}
	// Expired items are not pending: acknowledging them counts nothing.
	n, err := s.AckInbox(ctx, "alice", []string{"past", "now", "in-1h"}, t0)
	checkErr(t, "AckInbox", err, nil)
	checkInt(t, "AckInbox(two expired, one pending)", n, 1)
}

// testUsersPending follows one user's pending items and topics through the
// changes that make UsersPending's answers true and false, asking for that
// user twice among others and checking every answer against what Inbox
// and UserTopics list, inside a transaction too.
func testUsersPending(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.PutTopic(ctx, store.Topic{Name: "news"}); err != nil {
		t.Fatal(err)
	}
	expiring := item("alice", "expiring")
	expiring.ExpiresAt = t0.Add(time.Hour)
	steps := []struct {
		name   string
		do     func() error
		now    time.Time
		inbox  bool
		topics bool
	}{
		{"nothing", func() error { return nil }, t0, false, false},
		{"an item of another user", func() error {
			_, err := s.PutInbox(ctx, []store.InboxItem{item("bob", "b1")})
			return err
		}, t0, false, false},
		{"another user subscribed", func() error {
			_, err := s.Subscribe(ctx, "news", []string{"bob"})
			return err
		}, t0, false, false},
		{"an item that expires", func() error {
			_, err := s.PutInbox(ctx, []store.InboxItem{expiring})
			return err
		}, t0, true, false},
		{"after it expired", func() error { return nil }, t0.Add(time.Hour), false, false},
		{"subscribed", func() error {
			_, err := s.Subscribe(ctx, "news", []string{"alice"})
			return err
		}, t0, true, true},
		{"item acknowledged", func() error {
			_, err := s.AckInbox(ctx, "alice", []string{"expiring"}, t0)
			return err
		}, t0, false, true},
		{"another item", func() error {
			_, err := s.PutInbox(ctx, []store.InboxItem{item("alice", "a2")})
			return err
		}, t0, true, true},
		{"unsubscribed", func() error {
			_, err := s.Unsubscribe(ctx, "news", []string{"alice"})
			return err
		}, t0, true, false},
		{"item deleted", func() error {
			_, err := s.DeleteInbox(ctx, "alice", []string{"a2"}, t0)
			return err
		}, t0, false, false},
	}
	users := []string{"bob", "alice", "nobody", "alice"}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		pending, err := s.UsersPending(ctx, users, st.now)
		checkErr(t, "UsersPending after "+st.name, err, nil)
		if len(pending) != len(users) {
			t.Fatalf("UsersPending after %s: %d answers for %d users", st.name, len(pending), len(users))
		}
		want := store.Pending{Inbox: st.inbox, Topics: st.topics}
		if pending[1] != want || pending[3] != want {
			t.Errorf("UsersPending after %s: alice = %+v and %+v; want %+v", st.name, pending[1], pending[3], want)
		}
		// Every answer agrees with the listings.
		for i, u := range users {
			items := listInbox(t, s, u, st.now, 1)
			names, err := s.UserTopics(ctx, u)
			checkErr(t, "UserTopics", err, nil)
			if pending[i] != (store.Pending{Inbox: len(items) > 0, Topics: len(names) > 0}) {
				t.Errorf("after %s: UsersPending says %+v for %s but Inbox lists %d items and UserTopics %d topics",
					st.name, pending[i], u, len(items), len(names))
			}
		}
	}
	if pending, err := s.UsersPending(ctx, nil, t0); err != nil || len(pending) != 0 {
		t.Errorf("UsersPending(no users) = %v, %v; want none, nil", pending, err)
	}
	// Inside a transaction, UsersPending sees the transaction's writes.
	err := s.InTx(ctx, func(tx store.Tx) error {
		if _, err := tx.PutInbox(ctx, []store.InboxItem{item("carol", "c1")}); err != nil {
			return err
		}
		if _, err := tx.Subscribe(ctx, "news", []string{"carol"}); err != nil {
			return err
		}
		pending, err := tx.UsersPending(ctx, []string{"carol"}, t0)
		if err != nil || len(pending) != 1 || pending[0] != (store.Pending{Inbox: true, Topics: true}) {
			return fmt.Errorf("UsersPending in the transaction = %v, %v; want [{true true}], nil", pending, err)
		}
		return nil
	})
	checkErr(t, "InTx", err, nil)
}

func testInboxAckDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	var items []store.InboxItem
	for i := range 6 {
		items = append(items, item("alice", fmt.Sprintf("a%d", i)))
	}
	mustPutInbox(t, s, append(items, item("bob", "a0"))...)

	type call func(ctx context.Context, user string, ids []string, now time.Time) (int, error)
	steps := []struct {
		name string
		call call
		user string
		ids  []string
		want int
	}{
		{"ack two", s.AckInbox, "alice", []string{"a0", "a1"}, 2},
		{"ack again", s.AckInbox, "alice", []string{"a0", "a1"}, 0},
		{"delete acked and pending", s.DeleteInbox, "alice", []string{"a1", "a2"}, 1},
		{"unknown ids", s.AckInbox, "alice", []string{"nope", ""}, 0},
		{"no ids", s.DeleteInbox, "alice", nil, 0},
		{"another user's id", s.AckInbox, "carol", []string{"a3"}, 0},
		{"repeated id", s.DeleteInbox, "alice", []string{"a3", "a3"}, 1},
		{"ack a deleted item", s.AckInbox, "alice", []string{"a3"}, 0},
	}
	for _, st := range steps {
		n, err := st.call(ctx, st.user, st.ids, t0)
		checkErr(t, st.name, err, nil)
		checkInt(t, st.name, n, st.want)
	}
	checkIDs(t, "Inbox(alice)", inboxIDs(t, "", listInbox(t, s, "alice", t0, 0)), []string{"a4", "a5"})
	checkIDs(t, "Inbox(bob)", inboxIDs(t, "", listInbox(t, s, "bob", t0, 0)), []string{"a0"})
}

func testInboxDedup(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := item("alice", "n1")
	mustPutInbox(t, s, first, item("alice", "n2"), item("alice", "n3"))

	again := item("alice", "n1")
	again.Content = []byte("a different payload")
	tests := []struct {
		name  string
		items []store.InboxItem
		want  []bool
	}{
		{"pending id", []store.InboxItem{again, item("bob", "n1")}, []bool{false, true}},
		{"repeated in one call", []store.InboxItem{item("alice", "n4"), item("alice", "n4"), item("alice", "n5")}, []bool{true, false, true}},
	}
	for _, tt := range tests {
		if got := mustPutInbox(t, s, tt.items...); !slices.Equal(got, tt.want) {
			t.Errorf("PutInbox(%s): inserted = %v, want %v", tt.name, got, tt.want)
		}
	}
	items := listInbox(t, s, "alice", t0, 0)
	if !bytes.Equal(items[0].Content, first.Content) {
		t.Errorf("Inbox: n1 content = %q, want the first put's %q", items[0].Content, first.Content)
	}

	// Acknowledged and deleted ids stay taken until pruned.
	if _, err := s.AckInbox(ctx, "alice", []string{"n1"}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteInbox(ctx, "alice", []string{"n2"}, t0); err != nil {
		t.Fatal(err)
	}
	expired := item("alice", "n6")
	expired.ExpiresAt = t0.Add(-time.Minute)
	mustPutInbox(t, s, expired)
	if got := mustPutInbox(t, s, item("alice", "n1"), item("alice", "n2"), item("alice", "n6")); !slices.Equal(got, []bool{false, false, false}) {
		t.Errorf("PutInbox(acknowledged, deleted, expired ids): inserted = %v, want all false", got)
	}
	checkIDs(t, "Inbox after re-sending removed ids", inboxIDs(t, "", listInbox(t, s, "alice", t0, 0)), []string{"n3", "n4", "n5"})

	// Within the window nothing is pruned; past it the ids are free again.
	n, err := s.PruneInbox(ctx, t0.Add(time.Hour), 2*time.Hour, 100)
	checkErr(t, "PruneInbox(within the window)", err, nil)
	checkInt(t, "PruneInbox(within the window)", n, 0)
	n, err = s.PruneInbox(ctx, t0.Add(3*time.Hour), 2*time.Hour, 100)
	checkErr(t, "PruneInbox(past the window)", err, nil)
	checkInt(t, "PruneInbox(past the window)", n, 3)
	if got := mustPutInbox(t, s, item("alice", "n1"), item("alice", "n2")); !slices.Equal(got, []bool{true, true}) {
		t.Errorf("PutInbox(pruned ids): inserted = %v, want all true", got)
	}
	checkIDs(t, "Inbox after re-sending pruned ids", inboxIDs(t, "", listInbox(t, s, "alice", t0, 0)), []string{"n3", "n4", "n5", "n1", "n2"})
}

func testInboxPrune(t *testing.T, s store.Store) {
	ctx := t.Context()
	const keep = time.Hour
	var items []store.InboxItem
	for i := range 30 {
		items = append(items, item("alice", fmt.Sprintf("p%02d", i)))
	}
	for i := range 7 {
		it := item("bob", fmt.Sprintf("x%02d", i))
		it.ExpiresAt = t0.Add(-keep - time.Duration(i+1)*time.Minute) // expired before the window
		items = append(items, it)
	}
	recent := item("bob", "recently-expired")
	recent.ExpiresAt = t0.Add(-keep + time.Minute)
	future := item("bob", "future")
	future.ExpiresAt = t0.Add(time.Hour)
	mustPutInbox(t, s, append(items, recent, future)...)
	var old, young []string
	for i := range 30 {
		if i%3 == 0 {
			young = append(young, fmt.Sprintf("p%02d", i))
		} else if i%3 == 1 {
			old = append(old, fmt.Sprintf("p%02d", i))
		}
	}
	if n, err := s.AckInbox(ctx, "alice", old, t0.Add(-keep-time.Second)); err != nil || n != len(old) {
		t.Fatalf("AckInbox(old) = %d, %v; want %d, nil", n, err, len(old))
	}
	if n, err := s.DeleteInbox(ctx, "alice", young, t0.Add(-keep+time.Second)); err != nil || n != len(young) {
		t.Fatalf("DeleteInbox(young) = %d, %v; want %d, nil", n, err, len(young))
	}

	// 10 old tombstones and 7 long expired items go, 5 at a time.
	for i, want := range []int{5, 5, 5, 2, 0} {
		n, err := s.PruneInbox(ctx, t0, keep, 5)
		checkErr(t, "PruneInbox", err, nil)
		checkInt(t, fmt.Sprintf("PruneInbox round %d", i), n, want)
	}
	// What was kept still blocks re-sends; what was pruned does not.
	var probe []store.InboxItem
	var want []bool
	for i := range 30 {
		probe = append(probe, item("alice", fmt.Sprintf("p%02d", i)))
		want = append(want, i%3 == 1)
	}
	probe = append(probe, item("bob", "x00"), item("bob", "recently-expired"), item("bob", "future"))
	want = append(want, true, false, false)
	if got := mustPutInbox(t, s, probe...); !slices.Equal(got, want) {
		t.Errorf("PutInbox after prune: inserted =\n %v\nwant\n %v", got, want)
	}

	for _, tt := range []struct {
		keep  time.Duration
		limit int
	}{{-time.Second, 10}, {time.Hour, 0}, {time.Hour, -1}} {
		if _, err := s.PruneInbox(ctx, t0, tt.keep, tt.limit); err == nil {
			t.Errorf("PruneInbox(keep %v, limit %d): got nil error", tt.keep, tt.limit)
		}
	}
}

func testPutInboxInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, bad := range []store.InboxItem{item("", "n1"), item("alice", "")} {
		inserted, err := s.PutInbox(ctx, []store.InboxItem{item("alice", "ok"), bad})
		if err == nil {
			t.Errorf("PutInbox(%+v): got inserted %v and nil error, want an error", bad, inserted)
		}
	}
	n, err := s.CountInbox(ctx, "alice", t0)
	checkErr(t, "CountInbox", err, nil)
	checkInt(t, "CountInbox after refused batches", n, 0)
	inserted, err := s.PutInbox(ctx, nil)
	checkErr(t, "PutInbox(nil)", err, nil)
	if len(inserted) != 0 {
		t.Errorf("PutInbox(nil) = %v, want empty", inserted)
	}
}

// testConcurrentPutInbox races puts of one (user, id) with different
// payloads: exactly one is inserted and it is the one listed. Meanwhile
// other goroutines put batches naming users in opposite orders, which
// must neither fail nor deadlock, and each user's items list once each
// in increasing Seq.
func testConcurrentPutInbox(t *testing.T, s store.Store) {
	const racers = 16
	ctx := t.Context()
	results := make([][]bool, racers)
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			it := item("alice", "contested")
			it.Content = fmt.Appendf(nil, "racer %d", i)
			<-start
			results[i], errs[i] = s.PutInbox(ctx, []store.InboxItem{it})
		})
	}
	const batchers, rounds = 6, 5
	batchErrs := make([]error, batchers)
	for w := range batchers {
		wg.Go(func() {
			users := []string{"bob", "carol", "dave"}
			if w%2 == 1 {
				slices.Reverse(users)
			}
			<-start
			for r := range rounds {
				var batch []store.InboxItem
				for _, u := range users {
					batch = append(batch, item(u, fmt.Sprintf("w%d-r%d", w, r)))
				}
				if _, err := s.PutInbox(ctx, batch); err != nil {
					batchErrs[w] = err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i := range racers {
		if errs[i] != nil {
			t.Errorf("PutInbox racer %d: got error %v, want nil", i, errs[i])
			continue
		}
		if results[i][0] {
			if winner >= 0 {
				t.Errorf("PutInbox: racers %d and %d both inserted, want exactly one", winner, i)
			}
			winner = i
		}
	}
	for w, err := range batchErrs {
		checkErr(t, fmt.Sprintf("PutInbox batch writer %d", w), err, nil)
	}
	items := listInbox(t, s, "alice", t0, 0)
	if winner < 0 || len(items) != 1 {
		t.Fatalf("PutInbox: winner %d, Inbox lists %d items; want one winner and one item", winner, len(items))
	}
	if want := fmt.Sprintf("racer %d", winner); string(items[0].Content) != want {
		t.Errorf("Inbox: content %q, want the winner's %q", items[0].Content, want)
	}
	for _, u := range []string{"bob", "carol", "dave"} {
		ids := inboxIDs(t, "Inbox("+u+")", listInbox(t, s, u, t0, 7))
		slices.Sort(ids)
		var want []string
		for w := range batchers {
			for r := range rounds {
				want = append(want, fmt.Sprintf("w%d-r%d", w, r))
			}
		}
		slices.Sort(want)
		checkIDs(t, "Inbox("+u+") after concurrent batches", ids, want)
	}
}

// testInboxCommitOrder checks that a user's items become visible in Seq
// order: while a transaction that put an item is open, a second put for
// the same user must not become visible ahead of it, or a reader would
// list [zero, second] now and [zero, first, second] later, and a cursor
// past "second" would skip "first". Every listing taken while the
// transaction is open must be a prefix of the final listing.
func testInboxCommitOrder(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustPutInbox(t, s, item("alice", "zero"))
	done := make(chan error, 1)
	var seen [][]string
	err := s.InTx(ctx, func(tx store.Tx) error {
		if _, err := tx.PutInbox(ctx, []store.InboxItem{item("alice", "first")}); err != nil {
			return err
		}
		go func() {
			_, err := s.PutInbox(ctx, []store.InboxItem{item("alice", "second")})
			done <- err
		}()
		// Read while the transaction is open. A store that lets "second"
		// commit first shows it within these reads; one that orders the
		// commits keeps the second put waiting, and the reads only ever
		// see "zero".
		for range 30 {
			items, _, err := s.Inbox(ctx, "alice", t0, store.Page{})
			if err != nil {
				return err
			}
			seen = append(seen, inboxIDs(t, "Inbox during the transaction", items))
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	})
	checkErr(t, "InTx", err, nil)
	checkErr(t, "PutInbox(second)", <-done, nil)
	final := inboxIDs(t, "Inbox", listInbox(t, s, "alice", t0, 0))
	checkIDs(t, "Inbox after both puts", final, []string{"zero", "first", "second"})
	for _, ids := range seen {
		if len(ids) > len(final) || !slices.Equal(ids, final[:len(ids)]) {
			t.Fatalf("Inbox during the transaction listed %q, not a prefix of the final %q", ids, final)
		}
	}
}

func testTopics(t *testing.T, s store.Store) {
	ctx := t.Context()
	before := time.Now()
	news, err := s.PutTopic(ctx, store.Topic{Name: "news", Retain: 3, ClientsMaySubscribe: true, MaxSubscribers: 10})
	after := time.Now()
	checkErr(t, "PutTopic(create)", err, nil)
	checkTime(t, "PutTopic: CreatedAt", news.CreatedAt, before, after)
	want := store.Topic{Name: "news", Retain: 3, ClientsMaySubscribe: true, MaxSubscribers: 10, CreatedAt: news.CreatedAt}
	checkTopic(t, "PutTopic(create)", news, want)

	got, err := s.Topic(ctx, "news")
	checkErr(t, "Topic", err, nil)
	checkTopic(t, "Topic", got, want)

	if _, err := s.Subscribe(ctx, "news", []string{"u1", "u2"}); err != nil {
		t.Fatal(err)
	}
	updated, err := s.PutTopic(ctx, store.Topic{Name: "news", Retain: 5, CreatedAt: time.Unix(1, 0), Subscribers: 99})
	checkErr(t, "PutTopic(update)", err, nil)
	want = store.Topic{Name: "news", Retain: 5, CreatedAt: news.CreatedAt, Subscribers: 2}
	checkTopic(t, "PutTopic(update)", updated, want)
	got, err = s.Topic(ctx, "news")
	checkErr(t, "Topic after update", err, nil)
	checkTopic(t, "Topic after update", got, want)

	// Topics list in byte order of their names.
	names := []string{"news", "a", "B", "a.b", "a-b", "a_b", "z", "Z9", "0"}
	for _, n := range names[1:] {
		if _, err := s.PutTopic(ctx, store.Topic{Name: n}); err != nil {
			t.Fatalf("PutTopic(%q): %v", n, err)
		}
	}
	slices.Sort(names)
	for _, limit := range []int{1, 2, 4, 9, 0} {
		var listed []string
		cursor := ""
		for {
			page, next, err := s.ListTopics(ctx, store.Page{Cursor: cursor, Limit: limit})
			checkErr(t, "ListTopics", err, nil)
			for _, tp := range page {
				listed = append(listed, tp.Name)
				if tp.Name == "news" {
					checkTopic(t, "ListTopics(news)", tp, want)
				}
			}
			if next == "" {
				break
			}
			cursor = next
		}
		checkIDs(t, fmt.Sprintf("ListTopics(limit %d)", limit), listed, names)
	}
	_, _, err = s.ListTopics(ctx, store.Page{Cursor: "garbage!"})
	checkErr(t, "ListTopics(bad cursor)", err, store.ErrBadCursor)

	checkErr(t, "DeleteTopic", s.DeleteTopic(ctx, "a"), nil)
	checkErr(t, "DeleteTopic(again)", s.DeleteTopic(ctx, "a"), store.ErrNotFound)
	_, err = s.Topic(ctx, "a")
	checkErr(t, "Topic(deleted)", err, store.ErrNotFound)
	_, err = s.Topic(ctx, "missing")
	checkErr(t, "Topic(missing)", err, store.ErrNotFound)

	for _, bad := range []store.Topic{{Name: ""}, {Name: "x", Retain: -1}, {Name: "x", MaxSubscribers: -1}} {
		if _, err := s.PutTopic(ctx, bad); err == nil {
			t.Errorf("PutTopic(%+v): got nil error", bad)
		}
	}
	_, err = s.Topic(ctx, "x")
	checkErr(t, "Topic of a refused PutTopic", err, store.ErrNotFound)
}

func testSubscriptions(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, n := range []string{"news", "events", "Alerts"} {
		if _, err := s.PutTopic(ctx, store.Topic{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	type op struct {
		name    string
		sub     bool
		topic   string
		users   []string
		want    int
		wantErr error
	}
	ops := []op{
		{"subscribe", true, "news", []string{"u3", "u1", "u2"}, 3, nil},
		{"subscribe again", true, "news", []string{"u1", "u2"}, 0, nil},
		{"subscribe some new, repeated", true, "news", []string{"u2", "u4", "u4"}, 1, nil},
		{"no users", true, "news", nil, 0, nil},
		{"other topics", true, "events", []string{"u1"}, 1, nil},
		{"other topics", true, "Alerts", []string{"u1", "u2"}, 2, nil},
		{"missing topic", true, "missing", []string{"u1"}, 0, store.ErrNotFound},
		{"unsubscribe", false, "news", []string{"u2", "u9", "u2"}, 1, nil},
		{"unsubscribe again", false, "news", []string{"u2"}, 0, nil},
		{"unsubscribe missing topic", false, "missing", []string{"u1"}, 0, store.ErrNotFound},
	}
	for _, o := range ops {
		var (
			n   int
			err error
		)
		if o.sub {
			n, err = s.Subscribe(ctx, o.topic, o.users)
		} else {
			n, err = s.Unsubscribe(ctx, o.topic, o.users)
		}
		checkErr(t, o.name, err, o.wantErr)
		checkInt(t, o.name, n, o.want)
	}
	for _, bad := range [][]string{{""}, {"u1", ""}} {
		if _, err := s.Subscribe(ctx, "news", bad); err == nil {
			t.Errorf("Subscribe(%q): got nil error", bad)
		}
		if _, err := s.Unsubscribe(ctx, "news", bad); err == nil {
			t.Errorf("Unsubscribe(%q): got nil error", bad)
		}
	}

	for user, want := range map[string][]string{
		"u1": {"Alerts", "events", "news"},
		"u2": {"Alerts"},
		"u3": {"news"},
		"u9": {},
	} {
		got, err := s.UserTopics(ctx, user)
		checkErr(t, "UserTopics", err, nil)
		if got == nil {
			t.Errorf("UserTopics(%s) = nil, want a non-nil slice", user)
		}
		checkIDs(t, "UserTopics("+user+")", got, want)
	}
	for topic, want := range map[string]int{"news": 3, "events": 1, "Alerts": 2} {
		tp, err := s.Topic(ctx, topic)
		checkErr(t, "Topic", err, nil)
		checkInt(t, "Topic("+topic+").Subscribers", tp.Subscribers, want)
	}

	// Subscribers page by user id in byte order.
	var users []string
	for i := range 25 {
		users = append(users, fmt.Sprintf("user-%02d", 24-i))
	}
	users = append(users, "User-Z", "user-", "ü")
	if _, err := s.Subscribe(ctx, "events", users); err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(users), "u1")
	slices.Sort(all)
	for _, limit := range []int{1, 7, 29, 0} {
		var listed []string
		cursor := ""
		for {
			page, next, err := s.TopicSubscribers(ctx, "events", store.Page{Cursor: cursor, Limit: limit})
			checkErr(t, "TopicSubscribers", err, nil)
			listed = append(listed, page...)
			if next == "" {
				break
			}
			cursor = next
		}
		checkIDs(t, fmt.Sprintf("TopicSubscribers(limit %d)", limit), listed, all)
	}
	_, _, err := s.TopicSubscribers(ctx, "missing", store.Page{})
	checkErr(t, "TopicSubscribers(missing)", err, store.ErrNotFound)
	if _, err := s.PutTopic(ctx, store.Topic{Name: "empty"}); err != nil {
		t.Fatal(err)
	}
	page, next, err := s.TopicSubscribers(ctx, "empty", store.Page{})
	checkErr(t, "TopicSubscribers(empty)", err, nil)
	if len(page) != 0 || next != "" {
		t.Errorf("TopicSubscribers(empty) = %q, %q; want nothing", page, next)
	}
	_, _, err = s.TopicSubscribers(ctx, "events", store.Page{Cursor: "%%%"})
	checkErr(t, "TopicSubscribers(bad cursor)", err, store.ErrBadCursor)
}

func testMaxSubscribers(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.PutTopic(ctx, store.Topic{Name: "small", MaxSubscribers: 3}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		users   []string
		want    int
		wantErr error
	}{
		{"two of three", []string{"a", "b"}, 2, nil},
		{"two more: over, all or nothing", []string{"a", "c", "d"}, 0, store.ErrLimit},
		{"existing ones do not count", []string{"a", "b", "c", "c"}, 1, nil},
		{"full", []string{"d"}, 0, store.ErrLimit},
		{"full but already subscribed", []string{"a"}, 0, nil},
	}
	for _, st := range steps {
		n, err := s.Subscribe(ctx, "small", st.users)
		checkErr(t, "Subscribe("+st.name+")", err, st.wantErr)
		checkInt(t, "Subscribe("+st.name+")", n, st.want)
	}
	got, err := s.UserTopics(ctx, "d")
	checkErr(t, "UserTopics(d)", err, nil)
	checkIDs(t, "UserTopics of a user refused", got, nil)

	if _, err := s.Unsubscribe(ctx, "small", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Subscribe(ctx, "small", []string{"d"})
	checkErr(t, "Subscribe(after a leave)", err, nil)
	checkInt(t, "Subscribe(after a leave)", n, 1)

	// Lowering the bound keeps the subscribers and refuses new ones.
	tp, err := s.PutTopic(ctx, store.Topic{Name: "small", MaxSubscribers: 1})
	checkErr(t, "PutTopic(lower bound)", err, nil)
	checkInt(t, "Subscribers after lowering the bound", tp.Subscribers, 3)
	_, err = s.Subscribe(ctx, "small", []string{"e"})
	checkErr(t, "Subscribe(over a lowered bound)", err, store.ErrLimit)
	// Unbounded again.
	if _, err := s.PutTopic(ctx, store.Topic{Name: "small"}); err != nil {
		t.Fatal(err)
	}
	n, err = s.Subscribe(ctx, "small", []string{"e", "f", "g"})
	checkErr(t, "Subscribe(unbounded)", err, nil)
	checkInt(t, "Subscribe(unbounded)", n, 3)

	// Concurrent subscribes: exactly max get in.
	const racers, maxSubs = 12, 5
	if _, err := s.PutTopic(ctx, store.Topic{Name: "race", MaxSubscribers: maxSubs}); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Subscribe(ctx, "race", []string{fmt.Sprintf("r%02d", i), fmt.Sprintf("r%02d-alt", i)})
		})
	}
	close(start)
	wg.Wait()
	admitted := 0
	for i, err := range errs {
		switch {
		case err == nil:
			admitted++
		case !errors.Is(err, store.ErrLimit):
			t.Errorf("Subscribe racer %d: got error %v, want nil or ErrLimit", i, err)
		}
	}
	checkInt(t, "racers admitted in pairs under a bound of 5", admitted, maxSubs/2)
	tp, err = s.Topic(ctx, "race")
	checkErr(t, "Topic(race)", err, nil)
	checkInt(t, "Topic(race).Subscribers", tp.Subscribers, 2*admitted)
	subs, _, err := s.TopicSubscribers(ctx, "race", store.Page{})
	checkErr(t, "TopicSubscribers(race)", err, nil)
	checkInt(t, "TopicSubscribers(race)", len(subs), 2*admitted)
}

// topicItem returns an item of topic with id.
func topicItem(topic, id string) store.TopicItem {
	return store.TopicItem{
		Topic: topic, ID: id, Subject: "subject " + id, Content: []byte("content " + id),
		ContentType: "text/plain", Sender: "system", CreatedAt: t0,
	}
}

func retainedIDs(t *testing.T, s store.Store, now time.Time, topics ...string) []string {
	t.Helper()
	items, err := s.RetainedItems(t.Context(), topics, now)
	if err != nil {
		t.Fatalf("RetainedItems(%q): %v", topics, err)
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.Topic + "/" + it.ID
		if i > 0 && it.Topic == items[i-1].Topic && it.Seq <= items[i-1].Seq {
			t.Errorf("RetainedItems: %s has Seq %d after %d, want increasing", ids[i], it.Seq, items[i-1].Seq)
		}
	}
	return ids
}

func testRetainedItems(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.PutTopic(ctx, store.Topic{Name: "news", Retain: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutTopic(ctx, store.Topic{Name: "Alerts", Retain: 10}); err != nil {
		t.Fatal(err)
	}
	put := func(it store.TopicItem) (store.TopicItem, bool) {
		t.Helper()
		got, inserted, err := s.PutTopicItem(ctx, it)
		if err != nil {
			t.Fatalf("PutTopicItem(%s/%s): %v", it.Topic, it.ID, err)
		}
		return got, inserted
	}
	for i := 1; i <= 5; i++ {
		it := topicItem("news", fmt.Sprintf("n%d", i))
		got, inserted := put(it)
		it.Seq = int64(i)
		if !inserted || !sameTopicItem(got, it) {
			t.Errorf("PutTopicItem(n%d) = %+v, %v; want %+v, true", i, got, inserted, it)
		}
	}
	checkIDs(t, "RetainedItems(retain 3)", retainedIDs(t, s, t0, "news"), []string{"news/n3", "news/n4", "news/n5"})

	// A retained id is not inserted again; a trimmed one is.
	dup := topicItem("news", "n5")
	dup.Content = []byte("other")
	got, inserted := put(dup)
	if inserted || got.Seq != 5 || string(got.Content) != "content n5" {
		t.Errorf("PutTopicItem(retained id) = %+v, %v; want the retained n5, false", got, inserted)
	}
	got, inserted = put(topicItem("news", "n1"))
	if !inserted || got.Seq != 6 {
		t.Errorf("PutTopicItem(trimmed id) = Seq %d, %v; want 6, true", got.Seq, inserted)
	}
	checkIDs(t, "RetainedItems after re-publishing a trimmed id", retainedIDs(t, s, t0, "news"), []string{"news/n4", "news/n5", "news/n1"})

	// Expiry, and order across topics: by name (byte order), then Seq.
	exp := topicItem("Alerts", "soon")
	exp.ExpiresAt = t0.Add(time.Minute)
	tokyo := time.FixedZone("JST", 9*60*60)
	odd := store.TopicItem{Topic: "Alerts", ID: "odd", Content: nil, CreatedAt: time.Date(2026, 11, 30, 21, 0, 0, 123456789, tokyo)}
	put(exp)
	got, _ = put(odd)
	if !got.CreatedAt.Equal(store.Timestamp(odd.CreatedAt)) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("PutTopicItem: CreatedAt %s, want %s in UTC", fmtTime(got.CreatedAt), fmtTime(odd.CreatedAt))
	}
	before := time.Now()
	got, _ = put(store.TopicItem{Topic: "Alerts", ID: "now"})
	checkTime(t, "PutTopicItem: CreatedAt of an item without one", got.CreatedAt, before, time.Now())
	checkIDs(t, "RetainedItems(all)", retainedIDs(t, s, t0, "news", "Alerts", "missing", "news"),
		[]string{"Alerts/soon", "Alerts/odd", "Alerts/now", "news/n4", "news/n5", "news/n1"})
	checkIDs(t, "RetainedItems(at expiry)", retainedIDs(t, s, t0.Add(time.Minute), "Alerts"),
		[]string{"Alerts/odd", "Alerts/now"})
	checkIDs(t, "RetainedItems(no topics)", retainedIDs(t, s, t0), nil)
	items, err := s.RetainedItems(ctx, []string{"Alerts"}, t0)
	checkErr(t, "RetainedItems", err, nil)
	for _, it := range items {
		checkStoredTime(t, "RetainedItems: CreatedAt", it.CreatedAt)
		checkStoredTime(t, "RetainedItems: ExpiresAt", it.ExpiresAt)
		want := topicItem("Alerts", "soon")
		want.ExpiresAt, want.Seq = exp.ExpiresAt, 1
		if it.ID == "soon" && !sameTopicItem(it, want) {
			t.Errorf("RetainedItems(soon) = %+v, want %+v", it, want)
		}
		if it.ID == "odd" && len(it.Content) != 0 {
			t.Errorf("RetainedItems(odd): content %q, want empty", it.Content)
		}
	}

	// Lowering Retain trims at once; Retain 0 keeps nothing.
	if _, err := s.PutTopic(ctx, store.Topic{Name: "news", Retain: 1}); err != nil {
		t.Fatal(err)
	}
	checkIDs(t, "RetainedItems(retain lowered to 1)", retainedIDs(t, s, t0, "news"), []string{"news/n1"})
	if _, err := s.PutTopic(ctx, store.Topic{Name: "news", Retain: 0}); err != nil {
		t.Fatal(err)
	}
	checkIDs(t, "RetainedItems(retain 0)", retainedIDs(t, s, t0, "news"), nil)
	got, inserted = put(topicItem("news", "n7"))
	if !inserted || got.Seq != 7 {
		t.Errorf("PutTopicItem(retain 0) = Seq %d, %v; want 7, true", got.Seq, inserted)
	}
	checkIDs(t, "RetainedItems(retain 0 after publishing)", retainedIDs(t, s, t0, "news"), nil)

	_, _, err = s.PutTopicItem(ctx, topicItem("missing", "x"))
	checkErr(t, "PutTopicItem(missing topic)", err, store.ErrNotFound)
	for _, bad := range []store.TopicItem{topicItem("", "x"), topicItem("news", "")} {
		if _, _, err := s.PutTopicItem(ctx, bad); err == nil {
			t.Errorf("PutTopicItem(%+v): got nil error", bad)
		}
	}
}

func testDeleteTopicCascade(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, n := range []string{"doomed", "kept"} {
		if _, err := s.PutTopic(ctx, store.Topic{Name: n, Retain: 5}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Subscribe(ctx, n, []string{"u1", "u2"}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if _, _, err := s.PutTopicItem(ctx, topicItem(n, fmt.Sprintf("i%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkErr(t, "DeleteTopic", s.DeleteTopic(ctx, "doomed"), nil)
	got, err := s.UserTopics(ctx, "u1")
	checkErr(t, "UserTopics", err, nil)
	checkIDs(t, "UserTopics after DeleteTopic", got, []string{"kept"})
	checkIDs(t, "RetainedItems after DeleteTopic", retainedIDs(t, s, t0, "doomed", "kept"),
		[]string{"kept/i0", "kept/i1", "kept/i2"})
	_, err = s.Subscribe(ctx, "doomed", []string{"u1"})
	checkErr(t, "Subscribe(deleted topic)", err, store.ErrNotFound)

	// A topic created again under the name starts empty.
	tp, err := s.PutTopic(ctx, store.Topic{Name: "doomed", Retain: 5})
	checkErr(t, "PutTopic(again)", err, nil)
	checkInt(t, "Subscribers of the new topic", tp.Subscribers, 0)
	checkIDs(t, "RetainedItems of the new topic", retainedIDs(t, s, t0, "doomed"), nil)
	it, inserted, err := s.PutTopicItem(ctx, topicItem("doomed", "i0"))
	checkErr(t, "PutTopicItem(new topic)", err, nil)
	if !inserted || it.Seq != 1 {
		t.Errorf("PutTopicItem(new topic) = Seq %d, %v; want 1, true", it.Seq, inserted)
	}
}

// testNotifyInTx checks that inbox and topic writes join a transaction.
func testNotifyInTx(t *testing.T, s store.Store) {
	ctx := t.Context()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Tx) error {
		if _, err := tx.PutInbox(ctx, []store.InboxItem{item("alice", "n1")}); err != nil {
			return err
		}
		if _, err := tx.PutTopic(ctx, store.Topic{Name: "news"}); err != nil {
			return err
		}
		if _, err := tx.Subscribe(ctx, "news", []string{"alice"}); err != nil {
			return err
		}
		items, _, err := tx.Inbox(ctx, "alice", t0, store.Page{})
		if err != nil || len(items) != 1 {
			return fmt.Errorf("Inbox in the transaction = %d items, %v; want 1", len(items), err)
		}
		return boom
	})
	checkErr(t, "InTx(rolled back)", err, boom)
	n, err := s.CountInbox(ctx, "alice", t0)
	checkErr(t, "CountInbox", err, nil)
	checkInt(t, "CountInbox after rollback", n, 0)
	_, err = s.Topic(ctx, "news")
	checkErr(t, "Topic after rollback", err, store.ErrNotFound)
	if got := mustPutInbox(t, s, item("alice", "n1")); !got[0] {
		t.Error("PutInbox after rollback: not inserted")
	}
}

// testNotifyContextDone checks the inbox and topic methods with a canceled
// context: each fails with context.Canceled and writes nothing.
func testNotifyContextDone(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.PutTopic(ctx, store.Topic{Name: "news", Retain: 2}); err != nil {
		t.Fatal(err)
	}
	mustPutInbox(t, s, item("alice", "n1"))
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"PutInbox", func(ctx context.Context) error {
			_, err := s.PutInbox(ctx, []store.InboxItem{item("alice", "n2")})
			return err
		}},
		{"Inbox", func(ctx context.Context) error {
			_, _, err := s.Inbox(ctx, "alice", t0, store.Page{})
			return err
		}},
		{"CountInbox", func(ctx context.Context) error {
			_, err := s.CountInbox(ctx, "alice", t0)
			return err
		}},
		{"AckInbox", func(ctx context.Context) error {
			_, err := s.AckInbox(ctx, "alice", []string{"n1"}, t0)
			return err
		}},
		{"DeleteInbox", func(ctx context.Context) error {
			_, err := s.DeleteInbox(ctx, "alice", []string{"n1"}, t0)
			return err
		}},
		{"PruneInbox", func(ctx context.Context) error {
			_, err := s.PruneInbox(ctx, t0, 0, 10)
			return err
		}},
		{"PutTopic", func(ctx context.Context) error {
			_, err := s.PutTopic(ctx, store.Topic{Name: "other"})
			return err
		}},
		{"Topic", func(ctx context.Context) error {
			_, err := s.Topic(ctx, "news")
			return err
		}},
		{"ListTopics", func(ctx context.Context) error {
			_, _, err := s.ListTopics(ctx, store.Page{})
			return err
		}},
		{"DeleteTopic", func(ctx context.Context) error { return s.DeleteTopic(ctx, "news") }},
		{"Subscribe", func(ctx context.Context) error {
			_, err := s.Subscribe(ctx, "news", []string{"alice"})
			return err
		}},
		{"Unsubscribe", func(ctx context.Context) error {
			_, err := s.Unsubscribe(ctx, "news", []string{"alice"})
			return err
		}},
		{"UsersPending", func(ctx context.Context) error {
			_, err := s.UsersPending(ctx, []string{"alice"}, t0)
			return err
		}},
		{"UserTopics", func(ctx context.Context) error {
			_, err := s.UserTopics(ctx, "alice")
			return err
		}},
		{"TopicSubscribers", func(ctx context.Context) error {
			_, _, err := s.TopicSubscribers(ctx, "news", store.Page{})
			return err
		}},
		{"PutTopicItem", func(ctx context.Context) error {
			_, _, err := s.PutTopicItem(ctx, topicItem("news", "x"))
			return err
		}},
		{"RetainedItems", func(ctx context.Context) error {
			_, err := s.RetainedItems(ctx, []string{"news"}, t0)
			return err
		}},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.name, tt.call(canceled), context.Canceled)
		})
	}
	checkIDs(t, "Inbox after canceled calls", inboxIDs(t, "", listInbox(t, s, "alice", t0, 0)), []string{"n1"})
	tp, err := s.Topic(ctx, "news")
	checkErr(t, "Topic after canceled calls", err, nil)
	checkInt(t, "Subscribers after canceled calls", tp.Subscribers, 0)
	checkIDs(t, "RetainedItems after canceled calls", retainedIDs(t, s, t0, "news"), nil)
	_, err = s.Topic(ctx, "other")
	checkErr(t, "Topic(other) after a canceled PutTopic", err, store.ErrNotFound)
}

func checkTopic(t *testing.T, what string, got, want store.Topic) {
	t.Helper()
	checkStoredTime(t, what+": CreatedAt", got.CreatedAt)
	if got.Name != want.Name || got.Retain != want.Retain || got.ClientsMaySubscribe != want.ClientsMaySubscribe ||
		got.MaxSubscribers != want.MaxSubscribers || got.Subscribers != want.Subscribers || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func sameTopicItem(a, b store.TopicItem) bool {
	return a.Topic == b.Topic && a.Seq == b.Seq && a.ID == b.ID && a.Subject == b.Subject &&
		bytes.Equal(a.Content, b.Content) && a.ContentType == b.ContentType && a.Sender == b.Sender &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// notifyTests are the conformance tests of Inbox and Topics.
var notifyTests = []struct {
	name string
	test func(t *testing.T, s store.Store)
}{
	{"InboxRoundTrip", testInboxRoundTrip},
	{"InboxOrderAndPages", testInboxOrderAndPages},
	{"InboxExpiry", testInboxExpiry},
	{"UsersPending", testUsersPending},
	{"InboxAckDelete", testInboxAckDelete},
	{"InboxDedup", testInboxDedup},
	{"InboxPrune", testInboxPrune},
	{"PutInboxInvalid", testPutInboxInvalid},
	{"ConcurrentPutInbox", testConcurrentPutInbox},
	{"InboxCommitOrder", testInboxCommitOrder},
	{"Topics", testTopics},
	{"Subscriptions", testSubscriptions},
	{"MaxSubscribers", testMaxSubscribers},
	{"RetainedItems", testRetainedItems},
	{"DeleteTopicCascade", testDeleteTopicCascade},
	{"NotifyInTx", testNotifyInTx},
	{"NotifyContextDone", testNotifyContextDone},
}
