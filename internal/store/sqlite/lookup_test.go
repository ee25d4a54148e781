package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/internal/store"
)

// TestLookupWorkersWait checks the lookup workers' contract: a caller that
// finds every worker busy gives up when its context ends, a busy worker's
// caller gets its own answer, and a stopped pool answers at once.
func TestLookupWorkersWait(t *testing.T) {
	started, release := make(chan string), make(chan struct{})
	w := startLookupWorkers([]lookupRunner{runnerFunc(func(l *lookup) {
		started <- l.subject
		<-release
		l.cred, l.account = store.Credential{Kind: l.kind, Subject: l.subject}, store.Account{ID: "acc-" + l.subject}
	})})
	type answer struct {
		a   store.Account
		err error
	}
	first := make(chan answer, 1)
	go func() {
		_, a, err := w.do(context.Background(), context.Background(), store.CredentialDevice, "one")
		first <- answer{a, err}
	}()
	if got := <-started; got != "one" {
		t.Fatalf("worker started %q, want one", got)
	}

	// The only worker is busy: a caller whose context ends stops waiting.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := w.do(ctx, context.Background(), store.CredentialDevice, "two"); !errors.Is(err, context.Canceled) {
		t.Errorf("do with every worker busy and a canceled context: err = %v, want context.Canceled", err)
	}

	close(release)
	if got := <-first; got.err != nil || got.a.ID != "acc-one" {
		t.Errorf("first lookup = %+v, %v; want acc-one", got.a, got.err)
	}
	if err := w.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, _, err := w.do(context.Background(), context.Background(), store.CredentialDevice, "three"); !errors.Is(err, errClosed) {
		t.Errorf("do after stop: err = %v, want errClosed", err)
	}
	if err := w.stop(); err != nil { // again: no effect
		t.Errorf("second stop: %v", err)
	}
}

// runnerFunc answers each lookup of a batch in turn.
type runnerFunc func(*lookup)

func (f runnerFunc) run(batch []*lookup) {
	for _, l := range batch {
		f(l)
	}
}

func (runnerFunc) close() error { return nil }

// batchSizes records the batch sizes a runner is given.
type batchSizes struct {
	lookupRunner
	mu  sync.Mutex
	max int
}

func (b *batchSizes) run(batch []*lookup) {
	b.mu.Lock()
	b.max = max(b.max, len(batch))
	b.mu.Unlock()
	b.lookupRunner.run(batch)
}

// TestLookupBatches: lookups answered together in one read transaction
// each get their own answer (an account, a disabled account, or not
// found), and the connection serves the next batches.
func TestLookupBatches(t *testing.T) {
	path := filepath.Join(t.TempDir(), "taisen.db")
	s := openTest(t, path, nil)
	ctx := t.Context()
	const accounts = 40
	disabledAt := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for i := range accounts {
		id := fmt.Sprintf("acc-%02d", i)
		if _, err := s.CreateAccount(ctx, store.Account{ID: id, Username: "user" + id},
			store.Credential{Kind: store.CredentialDevice, Subject: "dev-" + id, AccountID: id}); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if err := s.SetAccountDisabled(ctx, id, disabledAt); err != nil {
				t.Fatal(err)
			}
		}
	}
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	r, err := newConnLookup(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	sizes := &batchSizes{lookupRunner: r}
	w := startLookupWorkers([]lookupRunner{sizes})
	t.Cleanup(func() {
		if err := errors.Join(w.stop(), db.Close()); err != nil {
			t.Error(err)
		}
	})

	var g sync.WaitGroup
	for range 64 {
		g.Go(func() {
			for j := range 3 * accounts / 2 {
				i := rand.IntN(accounts + accounts/2) // a third are missing
				id := fmt.Sprintf("acc-%02d", i)
				c, a, err := w.do(ctx, ctx, store.CredentialDevice, "dev-"+id)
				switch {
				case i >= accounts:
					if !errors.Is(err, store.ErrNotFound) {
						t.Errorf("lookup %d of a missing device: err = %v, want ErrNotFound", j, err)
					}
				case err != nil:
					t.Errorf("lookup of %s: %v", id, err)
				case a.ID != id || c.AccountID != id || a.Username != "user"+id || c.Subject != "dev-"+id:
					t.Errorf("lookup of %s answered %+v, %+v", id, c, a)
				case (i%3 == 0) != a.DisabledAt.Equal(disabledAt):
					t.Errorf("lookup of %s: disabled at %v, want disabled %v", id, a.DisabledAt, i%3 == 0)
				}
			}
		})
	}
	g.Wait()
	if sizes.max < 2 {
		t.Logf("64 concurrent callers were answered one at a time (max batch %d)", sizes.max)
	}
}

// TestLookupReconnects: a lookup whose connection has failed gets an
// error, never an empty answer, and the next lookup runs on a new
// connection.
func TestLookupReconnects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "taisen.db")
	s := openTest(t, path, nil)
	ctx := t.Context()
	if _, err := s.CreateAccount(ctx, store.Account{ID: "acc-1", Username: "one"},
		store.Credential{Kind: store.CredentialDevice, Subject: "dev-1", AccountID: "acc-1"}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	r, err := newConnLookup(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	w := startLookupWorkers([]lookupRunner{r})
	t.Cleanup(func() {
		if err := errors.Join(w.stop(), db.Close()); err != nil {
			t.Error(err)
		}
	})
	if err := r.conn.Close(); err != nil { // the worker is idle
		t.Fatal(err)
	}
	if _, a, err := w.do(ctx, ctx, store.CredentialDevice, "dev-1"); err == nil {
		t.Fatalf("lookup on a closed connection answered %+v and no error", a)
	}
	if _, a, err := w.do(ctx, ctx, store.CredentialDevice, "dev-1"); err != nil || a.ID != "acc-1" {
		t.Fatalf("lookup after the failure = %+v, %v; want acc-1", a, err)
	}
}
