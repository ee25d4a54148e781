package auth

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/store"
	"github.com/taisen-dev/taisen/internal/store/sqlite"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fastParams keep tests quick; DefaultPasswordParams is tested once.
var fastParams = PasswordParams{Memory: 64, Iterations: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

var testSecret = bytes.Repeat([]byte("s"), MinSecretLen)

// t0 has a sub-second part so truncation to JWT seconds is exercised.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: t0} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testStore is a real SQLite store with hooks for failure injection.
type testStore struct {
	*sqlite.Store
	tb testing.TB

	mu sync.Mutex
	// beforeCreate, when set, runs at the start of CreateAccount.
	beforeCreate func()
	// err, when set, is returned by the methods named in failOn.
	err    error
	failOn map[string]bool
}

var _ AccountStore = (*testStore)(nil)

func newTestStore(tb testing.TB) *testStore {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "taisen.db"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return &testStore{Store: st, tb: tb}
}

func (f *testStore) fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOn == nil {
		f.failOn = map[string]bool{}
	}
	f.failOn[method] = true
	f.err = err
}

func (f *testStore) failing(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOn[method] {
		return f.err
	}
	return nil
}

func (f *testStore) CreateAccount(ctx context.Context, a store.Account, c store.Credential) (store.Account, error) {
	f.mu.Lock()
	hook := f.beforeCreate
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	if err := f.failing("CreateAccount"); err != nil {
		return store.Account{}, err
	}
	return f.Store.CreateAccount(ctx, a, c)
}

func (f *testStore) Account(ctx context.Context, id string) (store.Account, error) {
	if err := f.failing("Account"); err != nil {
		return store.Account{}, err
	}
	return f.Store.Account(ctx, id)
}

func (f *testStore) CredentialAccount(ctx context.Context, kind store.CredentialKind, subject string) (store.Credential, store.Account, error) {
	if err := f.failing("CredentialAccount"); err != nil {
		return store.Credential{}, store.Account{}, err
	}
	return f.Store.CredentialAccount(ctx, kind, subject)
}

// setDisabled disables or re-enables an account in the store only (not
// through the Service, so no cache learns it).
func (f *testStore) setDisabled(id string, disabled bool) {
	var at time.Time
	if disabled {
		at = time.Now()
	}
	if err := f.Store.SetAccountDisabled(context.Background(), id, at); err != nil {
		f.tb.Fatal(err)
	}
}

// deleteAccount removes an account and its credentials.
func (f *testStore) deleteAccount(id string) {
	if err := f.Store.DeleteAccount(context.Background(), id); err != nil {
		f.tb.Fatal(err)
	}
}

// rename changes an account's username.
func (f *testStore) rename(id, username string) {
	if err := f.Store.SetUsername(context.Background(), id, username); err != nil {
		f.tb.Fatal(err)
	}
}

func (f *testStore) accountCount() int {
	accounts, _, err := f.Store.ListAccounts(context.Background(), store.Page{Limit: store.MaxLimit})
	if err != nil {
		f.tb.Fatal(err)
	}
	return len(accounts)
}

func (f *testStore) credential(kind store.CredentialKind, subject string) store.Credential {
	c, err := f.Store.Credential(context.Background(), kind, subject)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		f.tb.Fatal(err)
	}
	return c
}

// testEnv is a started Service over a SQLite store with a test clock.
type testEnv struct {
	svc    *Service
	store  *testStore
	clock  *testClock
	tokens *TokenIssuer
	hasher *Hasher
}

func newTestEnv(tb testing.TB) *testEnv {
	tb.Helper()
	return newTestEnvWith(tb, Config{}, Deps{})
}

// newTestEnvWith is newTestEnv with cfg and the optional parts of deps
// (Bus, OnRevoke, Logger).
func newTestEnvWith(tb testing.TB, cfg Config, deps Deps) *testEnv {
	tb.Helper()
	clock := newTestClock()
	tokens, err := NewTokenIssuer(TokenConfig{Secret: testSecret, Now: clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	hasher := deps.Hasher
	if hasher == nil {
		if hasher, err = NewHasher(fastParams, 0); err != nil {
			tb.Fatal(err)
		}
	}
	st := newTestStore(tb)
	deps.Accounts, deps.Tokens, deps.Hasher, deps.Now = st, tokens, hasher, clock.Now
	svc, err := New(cfg, deps)
	if err != nil {
		tb.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = svc.Close() })
	return &testEnv{svc: svc, store: st, clock: clock, tokens: tokens, hasher: hasher}
}

// wantCode fails unless err is an *apierr.Error with code want.
func wantCode(tb testing.TB, err error, want apierr.Code) *apierr.Error {
	tb.Helper()
	var e *apierr.Error
	if !errors.As(err, &e) {
		tb.Fatalf("err = %v, want an *apierr.Error with code %s", err, apierr.CodeName(want))
	}
	if e.Code != want {
		tb.Fatalf("code = %s (%q), want %s", apierr.CodeName(e.Code), e.Message, apierr.CodeName(want))
	}
	return e
}
