package sqlite

import (
	"context"
	"errors"
	"testing"

	"github.com/taisen-dev/taisen/internal/store"
)

// TestLookupWorkersWait checks the lookup workers' contract: a caller that
// finds every worker busy gives up when its context ends, a busy worker's
// caller gets its own answer, and a stopped pool answers at once.
func TestLookupWorkersWait(t *testing.T) {
	started, release := make(chan string), make(chan struct{})
	w := startLookupWorkers(1, func(_ context.Context, kind store.CredentialKind, subject string) (store.Credential, store.Account, error) {
		started <- subject
		<-release
		return store.Credential{Kind: kind, Subject: subject}, store.Account{ID: "acc-" + subject}, nil
	})
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
	w.stop()
	if _, _, err := w.do(context.Background(), context.Background(), store.CredentialDevice, "three"); !errors.Is(err, errClosed) {
		t.Errorf("do after stop: err = %v, want errClosed", err)
	}
	w.stop() // again: no effect
}
