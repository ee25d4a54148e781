// Package storetest is the conformance suite of store.Store: every
// implementation runs it from its own tests, so the engines behave alike.
// It also holds benchmarks the implementations share.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taisen-dev/taisen/internal/store"
)

// Run runs the conformance suite against the implementation that open
// returns. Each test calls open for a new, empty Store; open arranges for it
// to be closed when the test ends (t.Cleanup), even if the test closed it
// already.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		test func(t *testing.T, s store.Store)
	}{
		{"CreateAccount", testCreateAccount},
		{"CreateAccountConflict", testCreateAccountConflict},
		{"CreateAccountCredentialOfOtherAccount", testCreateAccountCredentialOfOtherAccount},
		{"UsernameCaseSensitive", testUsernameCaseSensitive},
		{"NotFound", testNotFound},
		{"Credentials", testCredentials},
		{"LinkUnlink", testLinkUnlink},
		{"SetAccountDisabled", testSetAccountDisabled},
		{"ContextDone", testContextDone},
		{"Ping", testPing},
		{"Close", testClose},
		{"ConcurrentSameCredential", testConcurrentSameCredential},
		{"ConcurrentDistinctAccounts", testConcurrentDistinctAccounts},
		{"CredentialAccount", testCredentialAccount},
		{"SetUsername", testSetUsername},
		{"SessionState", testSessionState},
		{"ConsumeRefresh", testConsumeRefresh},
		{"ConcurrentRefreshReuse", testConcurrentRefreshReuse},
		{"ListAccounts", testListAccounts},
		{"InTx", testInTx},
	}
	tests = append(tests, notifyTests...)
	tests = append(tests, roomTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			tt.test(t, s)
		})
	}
}

func testCreateAccount(t *testing.T, s store.Store) {
	tokyo := time.FixedZone("JST", 9*60*60)
	tests := []struct {
		name string
		a    store.Account
		c    store.Credential
		// wantDisabledAt is what DisabledAt reads back as.
		wantDisabledAt time.Time
	}{
		{
			name: "minimal",
			a:    store.Account{ID: newID(), Username: "alice"},
			c:    store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"},
		},
		{
			name: "display name and unicode username",
			a:    store.Account{ID: newID(), Username: "本因坊秀策", DisplayName: "Hon'inbō Shūsaku"},
			c:    store.Credential{Kind: store.CredentialCustom, Subject: "custom-shusaku"},
		},
		{
			name: "email credential with secret",
			a:    store.Account{ID: newID(), Username: "carol", DisplayName: "Carol"},
			c: store.Credential{
				Kind:    store.CredentialEmail,
				Subject: "carol@example.com",
				Secret:  "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
			},
		},
		{
			name: "caller timestamps ignored",
			a: store.Account{
				ID:        newID(),
				Username:  "dave",
				CreatedAt: time.Date(2001, 2, 3, 4, 5, 6, 7, tokyo),
				UpdatedAt: time.Date(2002, 2, 3, 4, 5, 6, 7, tokyo),
			},
			c: store.Credential{
				Kind:      store.CredentialDevice,
				Subject:   "device-dave",
				CreatedAt: time.Date(2003, 2, 3, 4, 5, 6, 7, tokyo),
			},
		},
		{
			name: "credential names the account",
			a:    store.Account{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Username: "erin"},
			c: store.Credential{
				Kind:      store.CredentialDevice,
				Subject:   "device-erin",
				AccountID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
			},
		},
		{
			name:           "created disabled",
			a:              store.Account{ID: newID(), Username: "frank", DisabledAt: time.Date(2030, 1, 2, 3, 4, 5, 678901234, tokyo)},
			c:              store.Credential{Kind: store.CredentialDevice, Subject: "device-frank"},
			wantDisabledAt: time.Date(2030, 1, 1, 18, 4, 5, 678000000, time.UTC),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			before := time.Now()
			got, err := s.CreateAccount(ctx, tt.a, tt.c)
			after := time.Now()
			if err != nil {
				t.Fatalf("CreateAccount: got error %v, want nil", err)
			}
			checkTime(t, "CreateAccount: CreatedAt", got.CreatedAt, before, after)
			want := store.Account{
				ID:          tt.a.ID,
				Username:    tt.a.Username,
				DisplayName: tt.a.DisplayName,
				CreatedAt:   got.CreatedAt,
				UpdatedAt:   got.CreatedAt,
				DisabledAt:  tt.wantDisabledAt,
			}
			checkAccount(t, "CreateAccount", got, want)

			byID, err := s.Account(ctx, tt.a.ID)
			checkErr(t, "Account", err, nil)
			checkAccount(t, "Account", byID, want)

			byName, err := s.AccountByUsername(ctx, tt.a.Username)
			checkErr(t, "AccountByUsername", err, nil)
			checkAccount(t, "AccountByUsername", byName, want)

			c, err := s.Credential(ctx, tt.c.Kind, tt.c.Subject)
			checkErr(t, "Credential", err, nil)
			checkTime(t, "Credential: CreatedAt", c.CreatedAt, before, after)
			wantCred := store.Credential{
				Kind:      tt.c.Kind,
				Subject:   tt.c.Subject,
				AccountID: tt.a.ID,
				Secret:    tt.c.Secret,
				CreatedAt: c.CreatedAt,
			}
			checkCredential(t, "Credential", c, wantCred)

			creds, err := s.Credentials(ctx, tt.a.ID)
			checkErr(t, "Credentials", err, nil)
			checkCredentials(t, "Credentials", creds, []store.Credential{wantCred})
		})
	}
}

func testCreateAccountConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	takenID := newID()
	takenCred := store.Credential{Kind: store.CredentialDevice, Subject: "device-taken", Secret: ""}
	existing := mustCreate(t, s, store.Account{ID: takenID, Username: "taken", DisplayName: "First"}, takenCred)
	existingCreds, err := s.Credentials(ctx, takenID)
	checkErr(t, "Credentials", err, nil)

	tests := []struct {
		name string
		a    store.Account
		c    store.Credential
	}{
		{
			name: "duplicate id",
			a:    store.Account{ID: takenID, Username: "fresh-1", DisplayName: "Second"},
			c:    store.Credential{Kind: store.CredentialDevice, Subject: "device-fresh-1"},
		},
		{
			name: "duplicate username",
			a:    store.Account{ID: newID(), Username: "taken"},
			c:    store.Credential{Kind: store.CredentialDevice, Subject: "device-fresh-2"},
		},
		{
			name: "duplicate credential",
			a:    store.Account{ID: newID(), Username: "fresh-3"},
			c:    takenCred,
		},
		{
			name: "duplicate credential with other secret",
			a:    store.Account{ID: newID(), Username: "fresh-4"},
			c:    store.Credential{Kind: takenCred.Kind, Subject: takenCred.Subject, Secret: "other"},
		},
		{
			name: "everything taken",
			a:    store.Account{ID: takenID, Username: "taken"},
			c:    takenCred,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CreateAccount(ctx, tt.a, tt.c)
			checkErr(t, "CreateAccount", err, store.ErrAlreadyExists)

			// Nothing of the failed create may remain.
			if tt.a.ID != takenID {
				_, err := s.Account(ctx, tt.a.ID)
				checkErr(t, "Account of the failed create", err, store.ErrNotFound)
			}
			if tt.a.Username != existing.Username {
				_, err := s.AccountByUsername(ctx, tt.a.Username)
				checkErr(t, "AccountByUsername of the failed create", err, store.ErrNotFound)
			}
			if tt.c.Subject != takenCred.Subject {
				_, err := s.Credential(ctx, tt.c.Kind, tt.c.Subject)
				checkErr(t, "Credential of the failed create", err, store.ErrNotFound)
			}
			// And the existing account is untouched.
			got, err := s.Account(ctx, takenID)
			checkErr(t, "Account of the existing account", err, nil)
			checkAccount(t, "Account of the existing account", got, existing)
			creds, err := s.Credentials(ctx, takenID)
			checkErr(t, "Credentials of the existing account", err, nil)
			checkCredentials(t, "Credentials of the existing account", creds, existingCreds)
		})
	}
}

func testCreateAccountCredentialOfOtherAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	other := mustCreate(t, s, store.Account{ID: newID(), Username: "other"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-other"})
	a := store.Account{ID: newID(), Username: "mismatch"}
	c := store.Credential{Kind: store.CredentialDevice, Subject: "device-mismatch", AccountID: other.ID}
	if _, err := s.CreateAccount(ctx, a, c); err == nil {
		t.Errorf("CreateAccount with a credential naming another account: got error nil, want an error")
	}
	_, err := s.Account(ctx, a.ID)
	checkErr(t, "Account", err, store.ErrNotFound)
	_, err = s.Credential(ctx, c.Kind, c.Subject)
	checkErr(t, "Credential", err, store.ErrNotFound)
}

func testUsernameCaseSensitive(t *testing.T, s store.Store) {
	ctx := t.Context()
	upper := mustCreate(t, s, store.Account{ID: newID(), Username: "Alice"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-upper"})
	lower := mustCreate(t, s, store.Account{ID: newID(), Username: "alice"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-lower"})
	tests := []struct {
		username string
		want     store.Account
		wantErr  error
	}{
		{username: "Alice", want: upper},
		{username: "alice", want: lower},
		{username: "ALICE", wantErr: store.ErrNotFound},
	}
	for _, tt := range tests {
		got, err := s.AccountByUsername(ctx, tt.username)
		what := fmt.Sprintf("AccountByUsername(%q)", tt.username)
		checkErr(t, what, err, tt.wantErr)
		if tt.wantErr == nil {
			checkAccount(t, what, got, tt.want)
		}
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, store.Account{ID: newID(), Username: "alice"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})
	missingID := newID()
	orphan := store.Credential{Kind: store.CredentialCustom, Subject: "custom-orphan", AccountID: missingID}

	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Account", func(ctx context.Context) error {
			_, err := s.Account(ctx, missingID)
			return err
		}},
		{"Account with the username as id", func(ctx context.Context) error {
			_, err := s.Account(ctx, a.Username)
			return err
		}},
		{"AccountByUsername", func(ctx context.Context) error {
			_, err := s.AccountByUsername(ctx, "bob")
			return err
		}},
		{"AccountByUsername with the id as username", func(ctx context.Context) error {
			_, err := s.AccountByUsername(ctx, a.ID)
			return err
		}},
		{"Credential", func(ctx context.Context) error {
			_, err := s.Credential(ctx, store.CredentialDevice, "device-bob")
			return err
		}},
		{"Credential of another kind", func(ctx context.Context) error {
			_, err := s.Credential(ctx, store.CredentialCustom, "device-alice")
			return err
		}},
		{"Credentials", func(ctx context.Context) error {
			_, err := s.Credentials(ctx, missingID)
			return err
		}},
		{"LinkCredential to a missing account", func(ctx context.Context) error {
			return s.LinkCredential(ctx, orphan)
		}},
		{"UnlinkCredential", func(ctx context.Context) error {
			return s.UnlinkCredential(ctx, store.CredentialDevice, "device-bob")
		}},
		{"UnlinkCredential of another kind", func(ctx context.Context) error {
			return s.UnlinkCredential(ctx, store.CredentialEmail, "device-alice")
		}},
		{"SetAccountDisabled", func(ctx context.Context) error {
			return s.SetAccountDisabled(ctx, missingID, time.Now())
		}},
		{"SetAccountDisabled zero time", func(ctx context.Context) error {
			return s.SetAccountDisabled(ctx, missingID, time.Time{})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.name, tt.call(ctx), store.ErrNotFound)
		})
	}

	// The failed calls changed nothing.
	_, err := s.Credential(ctx, orphan.Kind, orphan.Subject)
	checkErr(t, "Credential of the orphan", err, store.ErrNotFound)
	got, err := s.Account(ctx, a.ID)
	checkErr(t, "Account", err, nil)
	checkAccount(t, "Account", got, a)
	_, err = s.Credential(ctx, store.CredentialDevice, "device-alice")
	checkErr(t, "Credential", err, nil)
}

func testCredentials(t *testing.T, s store.Store) {
	ctx := t.Context()
	before := time.Now()
	a := mustCreate(t, s, store.Account{ID: newID(), Username: "alice"},
		store.Credential{Kind: store.CredentialDevice, Subject: "d-2"})
	// Another account's credentials must not show.
	mustCreate(t, s, store.Account{ID: newID(), Username: "bob"},
		store.Credential{Kind: store.CredentialDevice, Subject: "d-11"})

	link := []store.Credential{
		{Kind: store.CredentialEmail, Subject: "alice@example.com", Secret: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"},
		{Kind: store.CredentialCustom, Subject: "zed"},
		{Kind: store.CredentialCustom, Subject: "Zed"},
		{Kind: store.CredentialCustom, Subject: "alpha"},
		{Kind: store.CredentialDevice, Subject: "d-10"},
		{Kind: store.CredentialDevice, Subject: "d-1"},
		// CreatedAt is set by the store, whatever the caller passes.
		{Kind: store.CredentialDevice, Subject: "D-3", CreatedAt: time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, c := range link {
		c.AccountID = a.ID
		if err := s.LinkCredential(ctx, c); err != nil {
			t.Fatalf("LinkCredential(%s/%s): got error %v, want nil", c.Kind, c.Subject, err)
		}
	}
	after := time.Now()

	// Ordered by kind then subject, comparing bytes: upper case first.
	want := []store.Credential{
		{Kind: store.CredentialCustom, Subject: "Zed"},
		{Kind: store.CredentialCustom, Subject: "alpha"},
		{Kind: store.CredentialCustom, Subject: "zed"},
		{Kind: store.CredentialDevice, Subject: "D-3"},
		{Kind: store.CredentialDevice, Subject: "d-1"},
		{Kind: store.CredentialDevice, Subject: "d-10"},
		{Kind: store.CredentialDevice, Subject: "d-2"},
		{Kind: store.CredentialEmail, Subject: "alice@example.com", Secret: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"},
	}
	got, err := s.Credentials(ctx, a.ID)
	checkErr(t, "Credentials", err, nil)
	for i, c := range got {
		checkTime(t, fmt.Sprintf("Credentials[%d].CreatedAt", i), c.CreatedAt, before, after)
	}
	for i := range want {
		want[i].AccountID = a.ID
		if i < len(got) {
			want[i].CreatedAt = got[i].CreatedAt
		}
	}
	checkCredentials(t, "Credentials", got, want)

	// Each one reads back alone the same.
	for _, w := range want {
		c, err := s.Credential(ctx, w.Kind, w.Subject)
		what := fmt.Sprintf("Credential(%s, %q)", w.Kind, w.Subject)
		checkErr(t, what, err, nil)
		checkCredential(t, what, c, w)
	}

	// An account without credentials lists none.
	for _, w := range want {
		if err := s.UnlinkCredential(ctx, w.Kind, w.Subject); err != nil {
			t.Fatalf("UnlinkCredential(%s, %q): got error %v, want nil", w.Kind, w.Subject, err)
		}
	}
	got, err = s.Credentials(ctx, a.ID)
	checkErr(t, "Credentials after unlinking all", err, nil)
	checkCredentials(t, "Credentials after unlinking all", got, nil)
}

func testLinkUnlink(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, store.Account{ID: newID(), Username: "alice"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})
	b := mustCreate(t, s, store.Account{ID: newID(), Username: "bob"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-bob"})
	shared := func(kind store.CredentialKind, owner string) store.Credential {
		return store.Credential{Kind: kind, Subject: "shared", AccountID: owner, Secret: "secret-of-" + owner}
	}

	// Steps run in order on one store. owner is who holds device/shared
	// after the step, "" for nobody; linked says the step linked it anew.
	steps := []struct {
		name    string
		do      func() error
		wantErr error
		owner   string
		linked  bool
	}{
		{"link to a", func() error {
			return s.LinkCredential(ctx, shared(store.CredentialDevice, a.ID))
		}, nil, a.ID, true},
		{"link to b while a holds it", func() error {
			return s.LinkCredential(ctx, shared(store.CredentialDevice, b.ID))
		}, store.ErrAlreadyExists, a.ID, false},
		{"link to a again", func() error {
			return s.LinkCredential(ctx, shared(store.CredentialDevice, a.ID))
		}, store.ErrAlreadyExists, a.ID, false},
		{"link another account's first credential", func() error {
			return s.LinkCredential(ctx, store.Credential{Kind: store.CredentialDevice, Subject: "device-bob", AccountID: a.ID})
		}, store.ErrAlreadyExists, a.ID, false},
		{"link same subject of another kind to b", func() error {
			return s.LinkCredential(ctx, shared(store.CredentialCustom, b.ID))
		}, nil, a.ID, false},
		{"unlink", func() error {
			return s.UnlinkCredential(ctx, store.CredentialDevice, "shared")
		}, nil, "", false},
		{"unlink again", func() error {
			return s.UnlinkCredential(ctx, store.CredentialDevice, "shared")
		}, store.ErrNotFound, "", false},
		{"link to b after unlink", func() error {
			return s.LinkCredential(ctx, shared(store.CredentialDevice, b.ID))
		}, nil, b.ID, true},
	}
	for _, st := range steps {
		before := time.Now()
		err := st.do()
		after := time.Now()
		checkErr(t, st.name, err, st.wantErr)
		c, err := s.Credential(ctx, store.CredentialDevice, "shared")
		what := fmt.Sprintf("after %q: Credential(device, shared)", st.name)
		if st.owner == "" {
			checkErr(t, what, err, store.ErrNotFound)
			continue
		}
		checkErr(t, what, err, nil)
		if c.AccountID != st.owner || c.Secret != "secret-of-"+st.owner {
			t.Errorf("%s: got AccountID %q Secret %q, want %q %q", what, c.AccountID, c.Secret, st.owner, "secret-of-"+st.owner)
		}
		if st.linked {
			checkTime(t, what+".CreatedAt", c.CreatedAt, before, after)
		}
	}

	// The same subject under another kind is its own credential.
	c, err := s.Credential(ctx, store.CredentialCustom, "shared")
	checkErr(t, "Credential(custom, shared)", err, nil)
	if c.AccountID != b.ID {
		t.Errorf("Credential(custom, shared): got AccountID %q, want %q", c.AccountID, b.ID)
	}
	// Failed links left the accounts' lists alone.
	tests := []struct {
		id   string
		want []string
	}{
		{a.ID, []string{"device/device-alice"}},
		{b.ID, []string{"custom/shared", "device/device-bob", "device/shared"}},
	}
	for _, tt := range tests {
		creds, err := s.Credentials(ctx, tt.id)
		checkErr(t, "Credentials", err, nil)
		var got []string
		for _, c := range creds {
			got = append(got, string(c.Kind)+"/"+c.Subject)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("Credentials(%s): got %q, want %q", tt.id, got, tt.want)
		}
	}
}

func testSetAccountDisabled(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, store.Account{ID: newID(), Username: "alice", DisplayName: "Alice"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})
	bystander := mustCreate(t, s, store.Account{ID: newID(), Username: "bob"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-bob"})
	tokyo := time.FixedZone("JST", 9*60*60)

	steps := []struct {
		name string
		at   time.Time
		want time.Time
	}{
		{"disable", time.Date(2031, 5, 6, 7, 8, 9, 123456789, tokyo), time.Date(2031, 5, 5, 22, 8, 9, 123000000, time.UTC)},
		{"disable again, other time", time.Date(2032, 1, 1, 0, 0, 0, 999999, time.UTC), time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"enable", time.Time{}, time.Time{}},
		{"enable again", time.Time{}, time.Time{}},
		{"disable in the past", time.Date(2020, 2, 29, 23, 59, 59, 1000000, time.UTC), time.Date(2020, 2, 29, 23, 59, 59, 1000000, time.UTC)},
		{"enable after all", time.Time{}, time.Time{}},
	}
	prev := a
	for _, st := range steps {
		before := time.Now()
		err := s.SetAccountDisabled(ctx, a.ID, st.at)
		after := time.Now()
		checkErr(t, st.name, err, nil)

		got, err := s.Account(ctx, a.ID)
		what := fmt.Sprintf("after %q: Account", st.name)
		checkErr(t, what, err, nil)
		checkTime(t, what+": UpdatedAt", got.UpdatedAt, before, after)
		if got.UpdatedAt.Before(prev.UpdatedAt) {
			t.Errorf("%s: got UpdatedAt %v, want not before the previous %v", what, got.UpdatedAt, prev.UpdatedAt)
		}
		want := a
		want.UpdatedAt = got.UpdatedAt
		want.DisabledAt = st.want
		checkAccount(t, what, got, want)

		byName, err := s.AccountByUsername(ctx, a.Username)
		checkErr(t, what+"ByUsername", err, nil)
		checkAccount(t, what+"ByUsername", byName, want)
		prev = got
	}

	got, err := s.Account(ctx, bystander.ID)
	checkErr(t, "Account of the bystander", err, nil)
	checkAccount(t, "Account of the bystander", got, bystander)
}

// testContextDone checks every method with a canceled context and one past
// its deadline: each fails with the context's error and writes nothing.
func testContextDone(t *testing.T, s store.Store) {
	a := mustCreate(t, s, store.Account{ID: newID(), Username: "alice"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})

	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	expired, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	contexts := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"canceled", canceled, context.Canceled},
		{"deadline exceeded", expired, context.DeadlineExceeded},
	}

	newAccount := store.Account{ID: newID(), Username: "bob"}
	newCred := store.Credential{Kind: store.CredentialDevice, Subject: "device-bob"}
	linked := store.Credential{Kind: store.CredentialCustom, Subject: "custom-alice", AccountID: a.ID}
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"CreateAccount", func(ctx context.Context) error {
			_, err := s.CreateAccount(ctx, newAccount, newCred)
			return err
		}},
		{"Account", func(ctx context.Context) error {
			_, err := s.Account(ctx, a.ID)
			return err
		}},
		{"AccountByUsername", func(ctx context.Context) error {
			_, err := s.AccountByUsername(ctx, a.Username)
			return err
		}},
		{"Credential", func(ctx context.Context) error {
			_, err := s.Credential(ctx, store.CredentialDevice, "device-alice")
			return err
		}},
		{"Credentials", func(ctx context.Context) error {
			_, err := s.Credentials(ctx, a.ID)
			return err
		}},
		{"LinkCredential", func(ctx context.Context) error { return s.LinkCredential(ctx, linked) }},
		{"UnlinkCredential", func(ctx context.Context) error {
			return s.UnlinkCredential(ctx, store.CredentialDevice, "device-alice")
		}},
		{"SetAccountDisabled", func(ctx context.Context) error { return s.SetAccountDisabled(ctx, a.ID, time.Now()) }},
		{"CredentialAccount", func(ctx context.Context) error {
			_, _, err := s.CredentialAccount(ctx, store.CredentialDevice, "device-alice")
			return err
		}},
		{"ListAccounts", func(ctx context.Context) error {
			_, _, err := s.ListAccounts(ctx, store.Page{})
			return err
		}},
		{"RevokeSessions", func(ctx context.Context) error {
			_, err := s.RevokeSessions(ctx, a.ID)
			return err
		}},
		{"ConsumeRefresh", func(ctx context.Context) error {
			return s.ConsumeRefresh(ctx, store.RefreshUse{Family: "family-1", AccountID: a.ID, ExpiresAt: time.Now().Add(time.Hour)})
		}},
		{"RestrictedSessions", func(ctx context.Context) error {
			_, err := s.RestrictedSessions(ctx)
			return err
		}},
		{"DeleteAccount", func(ctx context.Context) error { return s.DeleteAccount(ctx, a.ID) }},
		{"InTx", func(ctx context.Context) error {
			return s.InTx(ctx, func(tx store.Tx) error {
				_, err := tx.Account(ctx, a.ID)
				return err
			})
		}},
		{"Ping", func(ctx context.Context) error { return s.Ping(ctx) }},
	}
	for _, c := range contexts {
		for _, tt := range calls {
			t.Run(c.name+"/"+tt.name, func(t *testing.T) {
				checkErr(t, tt.name, tt.call(c.ctx), c.want)
			})
		}
	}

	// Nothing was written, and the store still works.
	ctx := t.Context()
	_, err := s.Account(ctx, newAccount.ID)
	checkErr(t, "Account of the canceled create", err, store.ErrNotFound)
	_, err = s.Credential(ctx, linked.Kind, linked.Subject)
	checkErr(t, "Credential of the canceled link", err, store.ErrNotFound)
	_, err = s.Credential(ctx, store.CredentialDevice, "device-alice")
	checkErr(t, "Credential of the canceled unlink", err, nil)
	got, err := s.Account(ctx, a.ID)
	checkErr(t, "Account", err, nil)
	checkAccount(t, "Account", got, a)
	if got.SessionEpoch != 0 {
		t.Errorf("SessionEpoch after the canceled RevokeSessions = %d, want 0", got.SessionEpoch)
	}
	fams, err := s.RevokedFamilies(ctx, time.Time{})
	checkErr(t, "RevokedFamilies", err, nil)
	if len(fams) != 0 {
		t.Errorf("RevokedFamilies = %v, want none", fams)
	}
}

func testPing(t *testing.T, s store.Store) {
	checkErr(t, "Ping", s.Ping(t.Context()), nil)
}

func testClose(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, store.Account{ID: newID(), Username: "alice"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})
	checkErr(t, "Close", s.Close(), nil)

	calls := []struct {
		name string
		call func() error
	}{
		{"CreateAccount", func() error {
			_, err := s.CreateAccount(ctx, store.Account{ID: newID(), Username: "bob"},
				store.Credential{Kind: store.CredentialDevice, Subject: "device-bob"})
			return err
		}},
		{"Account", func() error {
			_, err := s.Account(ctx, a.ID)
			return err
		}},
		{"AccountByUsername", func() error {
			_, err := s.AccountByUsername(ctx, a.Username)
			return err
		}},
		{"Credential", func() error {
			_, err := s.Credential(ctx, store.CredentialDevice, "device-alice")
			return err
		}},
		{"Credentials", func() error {
			_, err := s.Credentials(ctx, a.ID)
			return err
		}},
		{"LinkCredential", func() error {
			return s.LinkCredential(ctx, store.Credential{Kind: store.CredentialCustom, Subject: "custom-alice", AccountID: a.ID})
		}},
		{"UnlinkCredential", func() error { return s.UnlinkCredential(ctx, store.CredentialDevice, "device-alice") }},
		{"SetAccountDisabled", func() error { return s.SetAccountDisabled(ctx, a.ID, time.Now()) }},
		{"PutInbox", func() error {
			_, err := s.PutInbox(ctx, []store.InboxItem{{UserID: a.ID, ID: "n1"}})
			return err
		}},
		{"Inbox", func() error {
			_, _, err := s.Inbox(ctx, a.ID, time.Now(), store.Page{})
			return err
		}},
		{"AckInbox", func() error {
			_, err := s.AckInbox(ctx, a.ID, []string{"n1"}, time.Now())
			return err
		}},
		{"PutTopic", func() error {
			_, err := s.PutTopic(ctx, store.Topic{Name: "news"})
			return err
		}},
		{"Subscribe", func() error {
			_, err := s.Subscribe(ctx, "news", []string{a.ID})
			return err
		}},
		{"PutTopicItem", func() error {
			_, _, err := s.PutTopicItem(ctx, store.TopicItem{Topic: "news", ID: "i1"})
			return err
		}},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Errorf("%s after Close: got error nil, want an error", tt.name)
			}
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrAlreadyExists) {
				t.Errorf("%s after Close: got error %v, want neither ErrNotFound nor ErrAlreadyExists", tt.name, err)
			}
		})
	}
}

// testConcurrentSameCredential races creates of distinct accounts with one
// credential: exactly one may win.
func testConcurrentSameCredential(t *testing.T, s store.Store) {
	const n = 16
	ctx := t.Context()
	cred := store.Credential{Kind: store.CredentialDevice, Subject: "device-contested"}
	accounts := make([]store.Account, n)
	for i := range accounts {
		accounts[i] = store.Account{ID: newID(), Username: fmt.Sprintf("racer-%02d", i)}
	}
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = s.CreateAccount(ctx, accounts[i], cred)
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("CreateAccount: racers %d and %d both succeeded, want exactly one", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrAlreadyExists):
			t.Errorf("CreateAccount racer %d: got error %v, want nil or %v", i, err, store.ErrAlreadyExists)
		}
	}
	if winner < 0 {
		t.Fatalf("CreateAccount: got no racer succeeding, want exactly one; errors: %v", errs)
	}

	c, err := s.Credential(ctx, cred.Kind, cred.Subject)
	checkErr(t, "Credential", err, nil)
	if c.AccountID != accounts[winner].ID {
		t.Errorf("Credential: got AccountID %q, want the winner's %q", c.AccountID, accounts[winner].ID)
	}
	for i, a := range accounts {
		_, err := s.Account(ctx, a.ID)
		if i == winner {
			checkErr(t, "Account of the winner", err, nil)
		} else {
			checkErr(t, fmt.Sprintf("Account of loser %d", i), err, store.ErrNotFound)
		}
	}
}

// testConcurrentDistinctAccounts writes and reads from several goroutines
// at once; nothing may fail, "database is locked" included.
func testConcurrentDistinctAccounts(t *testing.T, s store.Store) {
	const (
		workers = 8
		rounds  = 8
	)
	ctx := t.Context()
	errs := make(chan error, workers*rounds)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			<-start
			for r := range rounds {
				if err := createAndRead(ctx, s, fmt.Sprintf("w%d-r%d", w, r)); err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, r, err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// createAndRead creates an account named name, links a second credential
// to it, disables it and reads it all back.
func createAndRead(ctx context.Context, s store.Store, name string) error {
	a := store.Account{ID: newID(), Username: name}
	if _, err := s.CreateAccount(ctx, a, store.Credential{Kind: store.CredentialDevice, Subject: "device-" + name}); err != nil {
		return err
	}
	if err := s.LinkCredential(ctx, store.Credential{Kind: store.CredentialCustom, Subject: "custom-" + name, AccountID: a.ID}); err != nil {
		return err
	}
	if err := s.SetAccountDisabled(ctx, a.ID, time.Now()); err != nil {
		return err
	}
	got, err := s.AccountByUsername(ctx, name)
	if err != nil {
		return err
	}
	if got.ID != a.ID || got.DisabledAt.IsZero() {
		return fmt.Errorf("AccountByUsername: got %s, want ID %s disabled", fmtAccount(got), a.ID)
	}
	c, err := s.Credential(ctx, store.CredentialCustom, "custom-"+name)
	if err != nil {
		return err
	}
	if c.AccountID != a.ID {
		return fmt.Errorf("Credential: got AccountID %q, want %q", c.AccountID, a.ID)
	}
	creds, err := s.Credentials(ctx, a.ID)
	if err != nil {
		return err
	}
	if len(creds) != 2 {
		return fmt.Errorf("Credentials: got %d, want 2", len(creds))
	}
	return nil
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func mustCreate(t *testing.T, s store.Store, a store.Account, c store.Credential) store.Account {
	t.Helper()
	got, err := s.CreateAccount(t.Context(), a, c)
	if err != nil {
		t.Fatalf("CreateAccount(%q): got error %v, want nil", a.Username, err)
	}
	return got
}

// checkErr reports err unless it matches want: nil for nil, errors.Is
// otherwise.
func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("%s: got error %v, want nil", what, err)
	case want != nil && !errors.Is(err, want):
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

// checkTime reports a store-set timestamp that is not UTC, not to the
// millisecond or outside [before, after].
func checkTime(t *testing.T, what string, got, before, after time.Time) {
	t.Helper()
	checkStoredTime(t, what, got)
	if got.Before(before.Truncate(time.Millisecond)) || got.After(after) {
		t.Errorf("%s: got %s, want between %s and %s", what, fmtTime(got), fmtTime(before), fmtTime(after))
	}
}

// checkStoredTime reports a timestamp that is not UTC or not to the
// millisecond.
func checkStoredTime(t *testing.T, what string, got time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Errorf("%s: got location %v, want UTC", what, got.Location())
	}
	if !got.Equal(got.Truncate(time.Millisecond)) {
		t.Errorf("%s: got %s, want millisecond precision", what, fmtTime(got))
	}
}

func checkAccount(t *testing.T, what string, got, want store.Account) {
	t.Helper()
	checkStoredTime(t, what+": CreatedAt", got.CreatedAt)
	checkStoredTime(t, what+": UpdatedAt", got.UpdatedAt)
	checkStoredTime(t, what+": DisabledAt", got.DisabledAt)
	if got.ID != want.ID || got.Username != want.Username || got.DisplayName != want.DisplayName ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) ||
		!got.DisabledAt.Equal(want.DisabledAt) {
		t.Errorf("%s:\n got %s\nwant %s", what, fmtAccount(got), fmtAccount(want))
	}
}

func checkCredential(t *testing.T, what string, got, want store.Credential) {
	t.Helper()
	checkStoredTime(t, what+": CreatedAt", got.CreatedAt)
	if !sameCredential(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, fmtCredential(got), fmtCredential(want))
	}
}

func checkCredentials(t *testing.T, what string, got, want []store.Credential) {
	t.Helper()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		same = sameCredential(got[i], want[i])
	}
	if !same {
		var b strings.Builder
		fmt.Fprintf(&b, "%s:\n got %d:", what, len(got))
		for _, c := range got {
			fmt.Fprintf(&b, "\n  %s", fmtCredential(c))
		}
		fmt.Fprintf(&b, "\nwant %d:", len(want))
		for _, c := range want {
			fmt.Fprintf(&b, "\n  %s", fmtCredential(c))
		}
		t.Error(b.String())
	}
	for i, c := range got {
		checkStoredTime(t, fmt.Sprintf("%s[%d].CreatedAt", what, i), c.CreatedAt)
	}
}

func sameCredential(a, b store.Credential) bool {
	return a.Kind == b.Kind && a.Subject == b.Subject && a.AccountID == b.AccountID &&
		a.Secret == b.Secret && a.CreatedAt.Equal(b.CreatedAt)
}

func fmtAccount(a store.Account) string {
	return fmt.Sprintf("{ID:%s Username:%q DisplayName:%q CreatedAt:%s UpdatedAt:%s DisabledAt:%s}",
		a.ID, a.Username, a.DisplayName, fmtTime(a.CreatedAt), fmtTime(a.UpdatedAt), fmtTime(a.DisabledAt))
}

func fmtCredential(c store.Credential) string {
	return fmt.Sprintf("{Kind:%s Subject:%q AccountID:%s Secret:%q CreatedAt:%s}",
		c.Kind, c.Subject, c.AccountID, c.Secret, fmtTime(c.CreatedAt))
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.Format(time.RFC3339Nano) + " (" + t.Location().String() + ")"
}
