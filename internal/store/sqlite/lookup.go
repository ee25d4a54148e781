package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/taisen-dev/taisen/internal/store"
)

// errClosed answers a lookup asked of a closed Store.
var errClosed = errors.New("sqlite: store closed")

// lookupWorkers run the login lookup on long-lived goroutines. A query
// through the pure-Go SQLite runs deep, large stack frames: on a
// goroutine whose stack starts small, as the gateway's per-request ones
// do, the runtime grows and copies the stack several times, which costs
// as much as the query itself. A worker's stack grows once. Handing a
// lookup to a worker and back costs two goroutine switches.
type lookupWorkers struct {
	reqs     chan *lookup
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	free     sync.Pool // *lookup
}

// lookup is one request to the workers and its answer.
type lookup struct {
	ctx     context.Context
	kind    store.CredentialKind
	subject string
	cred    store.Credential
	account store.Account
	err     error
	// ready receives once the answer is in.
	ready chan struct{}
}

// startLookupWorkers starts n workers that answer with run.
func startLookupWorkers(n int, run func(context.Context, store.CredentialKind, string) (store.Credential, store.Account, error)) *lookupWorkers {
	w := &lookupWorkers{reqs: make(chan *lookup), done: make(chan struct{})}
	w.free.New = func() any { return &lookup{ready: make(chan struct{}, 1)} }
	w.wg.Add(n)
	for range n {
		go func() {
			defer w.wg.Done()
			for {
				select {
				case <-w.done:
					return
				case l := <-w.reqs:
					l.cred, l.account, l.err = run(l.ctx, l.kind, l.subject)
					l.ready <- struct{}{}
				}
			}
		}()
	}
	return w
}

// do runs one lookup on a worker and waits for its answer. Waiting for a
// free worker ends with ctx; the query runs under query, which should not
// be cancellable (see pointRead), and is waited for to the end.
func (w *lookupWorkers) do(ctx, query context.Context, kind store.CredentialKind, subject string) (store.Credential, store.Account, error) {
	l := w.free.Get().(*lookup)
	l.ctx, l.kind, l.subject = query, kind, subject
	select {
	case w.reqs <- l:
	case <-ctx.Done():
		*l = lookup{ready: l.ready}
		w.free.Put(l)
		return store.Credential{}, store.Account{}, fmt.Errorf("sqlite: get credential and account: %w", ctx.Err())
	case <-w.done:
		*l = lookup{ready: l.ready}
		w.free.Put(l)
		return store.Credential{}, store.Account{}, fmt.Errorf("sqlite: get credential and account: %w", errClosed)
	}
	<-l.ready
	cred, account, err := l.cred, l.account, l.err
	*l = lookup{ready: l.ready}
	w.free.Put(l)
	return cred, account, err
}

// stop ends the workers once the lookups they hold are answered.
func (w *lookupWorkers) stop() {
	w.stopOnce.Do(func() { close(w.done) })
	w.wg.Wait()
}
