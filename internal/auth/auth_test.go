package auth

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/store"
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

// fakeStore is an in-memory AccountStore with the uniqueness rules of
// store.Store and hooks for failure injection.
type fakeStore struct {
	mu        sync.Mutex
	accounts  map[string]store.Account
	usernames map[string]string // username -> account id
	creds     map[credKey]store.Credential
	creates   int // successful CreateAccount calls

	// beforeCreate, when set, runs at the start of CreateAccount, outside
	// the lock.
	beforeCreate func()
	// err, when set, is returned by the methods named in failOn.
	err    error
	failOn map[string]bool
}

type credKey struct {
	kind    store.CredentialKind
	subject string
}

func newFakeStore() *fakeStore {
	return &fakeStore{
		accounts:  map[string]store.Account{},
		usernames: map[string]string{},
		creds:     map[credKey]store.Credential{},
	}
}

var _ AccountStore = (*fakeStore)(nil)

func (f *fakeStore) fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOn == nil {
		f.failOn = map[string]bool{}
	}
	f.failOn[method] = true
	f.err = err
}

func (f *fakeStore) CreateAccount(ctx context.Context, a store.Account, c store.Credential) (store.Account, error) {
	if f.beforeCreate != nil {
		f.beforeCreate()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOn["CreateAccount"] {
		return store.Account{}, f.err
	}
	if err := ctx.Err(); err != nil {
		return store.Account{}, err
	}
	_, idTaken := f.accounts[a.ID]
	_, nameTaken := f.usernames[a.Username]
	_, credTaken := f.creds[credKey{c.Kind, c.Subject}]
	if idTaken || nameTaken || credTaken {
		return store.Account{}, store.ErrAlreadyExists
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	a.CreatedAt, a.UpdatedAt, a.DisabledAt = now, now, time.Time{}
	c.AccountID, c.CreatedAt = a.ID, now
	f.accounts[a.ID] = a
	f.usernames[a.Username] = a.ID
	f.creds[credKey{c.Kind, c.Subject}] = c
	f.creates++
	return a, nil
}

func (f *fakeStore) Account(ctx context.Context, id string) (store.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOn["Account"] {
		return store.Account{}, f.err
	}
	a, ok := f.accounts[id]
	if !ok {
		return store.Account{}, store.ErrNotFound
	}
	return a, nil
}

func (f *fakeStore) Credential(ctx context.Context, kind store.CredentialKind, subject string) (store.Credential, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOn["Credential"] {
		return store.Credential{}, f.err
	}
	c, ok := f.creds[credKey{kind, subject}]
	if !ok {
		return store.Credential{}, store.ErrNotFound
	}
	return c, nil
}

// setDisabled disables or re-enables an account.
func (f *fakeStore) setDisabled(id string, disabled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.accounts[id]
	a.DisabledAt = time.Time{}
	if disabled {
		a.DisabledAt = time.Now()
	}
	f.accounts[id] = a
}

// deleteAccount removes an account and its credentials.
func (f *fakeStore) deleteAccount(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.usernames, f.accounts[id].Username)
	delete(f.accounts, id)
	for k, c := range f.creds {
		if c.AccountID == id {
			delete(f.creds, k)
		}
	}
}

// rename changes an account's username.
func (f *fakeStore) rename(id, username string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.accounts[id]
	delete(f.usernames, a.Username)
	a.Username = username
	f.accounts[id] = a
	f.usernames[username] = id
}

func (f *fakeStore) accountCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.accounts)
}

func (f *fakeStore) credential(kind store.CredentialKind, subject string) store.Credential {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creds[credKey{kind, subject}]
}

// testEnv is a Service over a fake store with a test clock.
type testEnv struct {
	svc    *Service
	store  *fakeStore
	clock  *testClock
	tokens *TokenIssuer
	hasher *Hasher
}

func newTestEnv(tb testing.TB) *testEnv {
	tb.Helper()
	clock := newTestClock()
	tokens, err := NewTokenIssuer(TokenConfig{Secret: testSecret, Now: clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	hasher, err := NewHasher(fastParams, 0)
	if err != nil {
		tb.Fatal(err)
	}
	fs := newFakeStore()
	svc, err := New(Config{}, Deps{Accounts: fs, Tokens: tokens, Hasher: hasher, Now: clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	return &testEnv{svc: svc, store: fs, clock: clock, tokens: tokens, hasher: hasher}
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
