package sqlite

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/internal/store"
)

// TestPendingAfterReopen: the users a node finds pending at login do not
// depend on the node having written their items itself; what the file
// holds when the Store opens counts.
func TestPendingAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "taisen.db")
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s, err := Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := s.PutInbox(ctx, []store.InboxItem{{UserID: "alice", ID: "a1", Subject: "gift", ContentType: "text/plain", Sender: "ops"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutTopic(ctx, store.Topic{Name: "news"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(ctx, "news", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path, nil)
	got, err := s.UsersPending(ctx, []string{"carol", "alice", "bob"}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Pending{{}, {Inbox: true}, {Topics: true}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("after reopening, UsersPending[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestPendingWhileWriting: an item whose PutInbox has returned is pending
// at every later login, however the writes and the logins interleave.
func TestPendingWhileWriting(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "taisen.db"), nil)
	ctx := t.Context()
	now := time.Now()
	const users = 200
	done := make(chan string, users)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := range users {
			u := "u" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			if _, err := s.PutInbox(ctx, []store.InboxItem{{UserID: u, ID: "x", Subject: "s", ContentType: "text/plain", Sender: "ops"}}); err != nil {
				t.Error(err)
				return
			}
			done <- u
		}
	})
	for u := range done {
		got, err := s.UsersPending(ctx, []string{u}, now)
		if err != nil {
			t.Fatal(err)
		}
		if !got[0].Inbox {
			t.Fatalf("%s has an item but UsersPending says %+v", u, got[0])
		}
	}
	wg.Wait()
}

func TestPendingFilter(t *testing.T) {
	f := newPendingFilter()
	f.add("alice", "bob")
	out := make([]bool, 3)
	if !f.maybe([]string{"carol", "bob", "alice"}, out) || out[0] || !out[1] || !out[2] {
		t.Errorf("maybe(carol, bob, alice) = %v, want [false true true]", out)
	}
	if f.maybe([]string{"carol"}, out[:1]) {
		t.Errorf("maybe(carol) = true, want false")
	}
	var none *pendingFilter
	none.add("x")
	if !none.maybe([]string{"x"}, out[:1]) || !out[0] {
		t.Errorf("a nil filter must answer maybe for everyone")
	}
}
