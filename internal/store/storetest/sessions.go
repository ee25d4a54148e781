package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/internal/store"
)

func testCredentialAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, store.Account{ID: newID(), Username: "alice", DisplayName: "Alice"},
		store.Credential{Kind: store.CredentialEmail, Subject: "alice@example.com", Secret: "$argon2id$x"})
	wantCred, err := s.Credential(ctx, store.CredentialEmail, "alice@example.com")
	checkErr(t, "Credential", err, nil)
	if _, err := s.RevokeSessions(ctx, a.ID); err != nil {
		t.Fatalf("RevokeSessions: %v", err)
	}
	wantAcc, err := s.Account(ctx, a.ID)
	checkErr(t, "Account", err, nil)

	cred, acc, err := s.CredentialAccount(ctx, store.CredentialEmail, "alice@example.com")
	checkErr(t, "CredentialAccount", err, nil)
	checkCredential(t, "CredentialAccount: credential", cred, wantCred)
	checkAccount(t, "CredentialAccount: account", acc, wantAcc)
	if acc.SessionEpoch != 1 {
		t.Errorf("CredentialAccount: SessionEpoch = %d, want 1", acc.SessionEpoch)
	}
	_, _, err = s.CredentialAccount(ctx, store.CredentialEmail, "bob@example.com")
	checkErr(t, "CredentialAccount(unknown)", err, store.ErrNotFound)
	_, _, err = s.CredentialAccount(ctx, store.CredentialDevice, "alice@example.com")
	checkErr(t, "CredentialAccount(other kind)", err, store.ErrNotFound)
}

func testSetUsername(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, store.Account{ID: newID(), Username: "alice"}, store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})
	mustCreate(t, s, store.Account{ID: newID(), Username: "bob"}, store.Credential{Kind: store.CredentialDevice, Subject: "device-bob"})
	checkErr(t, "SetUsername(alice2)", s.SetUsername(ctx, a.ID, "alice2"), nil)
	got, err := s.Account(ctx, a.ID)
	checkErr(t, "Account", err, nil)
	if got.Username != "alice2" {
		t.Errorf("Username = %q, want alice2", got.Username)
	}
	checkErr(t, "SetUsername(taken)", s.SetUsername(ctx, a.ID, "bob"), store.ErrAlreadyExists)
	checkErr(t, "SetUsername(unknown)", s.SetUsername(ctx, newID(), "carol"), store.ErrNotFound)
}

func testSessionState(t *testing.T, s store.Store) {
	ctx := t.Context()
	mk := func(name string) string {
		return mustCreate(t, s, store.Account{ID: newID(), Username: name},
			store.Credential{Kind: store.CredentialDevice, Subject: "device-" + name}).ID
	}
	plain, revoked, disabled, deleted := mk("plain"), mk("revoked"), mk("disabled"), mk("deleted")
	for want := int64(1); want <= 2; want++ {
		epoch, err := s.RevokeSessions(ctx, revoked)
		checkErr(t, "RevokeSessions", err, nil)
		if epoch != want {
			t.Errorf("RevokeSessions #%d = %d, want %d", want, epoch, want)
		}
	}
	_, err := s.RevokeSessions(ctx, newID())
	checkErr(t, "RevokeSessions(unknown)", err, store.ErrNotFound)
	checkErr(t, "SetAccountDisabled", s.SetAccountDisabled(ctx, disabled, time.Now()), nil)
	checkErr(t, "DeleteAccount", s.DeleteAccount(ctx, deleted), nil)
	checkErr(t, "DeleteAccount(again)", s.DeleteAccount(ctx, deleted), store.ErrNotFound)
	_, err = s.Account(ctx, deleted)
	checkErr(t, "Account(deleted)", err, store.ErrNotFound)
	_, err = s.Credential(ctx, store.CredentialDevice, "device-deleted")
	checkErr(t, "Credential(deleted)", err, store.ErrNotFound)

	want := map[string]store.SessionState{
		plain:    {AccountID: plain},
		revoked:  {AccountID: revoked, Epoch: 2},
		disabled: {AccountID: disabled, Disabled: true},
		deleted:  {AccountID: deleted, Deleted: true},
	}
	for id, w := range want {
		got, err := s.SessionState(ctx, id)
		checkErr(t, "SessionState", err, nil)
		if got != w {
			t.Errorf("SessionState(%s) = %+v, want %+v", id, got, w)
		}
	}
	_, err = s.SessionState(ctx, newID())
	checkErr(t, "SessionState(unknown)", err, store.ErrNotFound)

	list, err := s.RestrictedSessions(ctx)
	checkErr(t, "RestrictedSessions", err, nil)
	slices.SortFunc(list, func(a, b store.SessionState) int { return strings.Compare(a.AccountID, b.AccountID) })
	var wantList []store.SessionState
	for _, w := range want {
		if w.Restricted() {
			wantList = append(wantList, w)
		}
	}
	slices.SortFunc(wantList, func(a, b store.SessionState) int { return strings.Compare(a.AccountID, b.AccountID) })
	if !slices.Equal(list, wantList) {
		t.Errorf("RestrictedSessions = %+v, want %+v", list, wantList)
	}

	// Re-enabling lifts the restriction; the epoch stays.
	checkErr(t, "SetAccountDisabled(zero)", s.SetAccountDisabled(ctx, disabled, time.Time{}), nil)
	got, err := s.SessionState(ctx, disabled)
	checkErr(t, "SessionState", err, nil)
	if got.Restricted() {
		t.Errorf("SessionState(re-enabled) = %+v, want unrestricted", got)
	}
}

func testConsumeRefresh(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, store.Account{ID: newID(), Username: "alice"}, store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})
	b := mustCreate(t, s, store.Account{ID: newID(), Username: "bob"}, store.Credential{Kind: store.CredentialDevice, Subject: "device-bob"})
	exp := time.Now().Add(time.Hour)
	use := func(fam, account string, gen int64) error {
		return s.ConsumeRefresh(ctx, store.RefreshUse{Family: fam, AccountID: account, Generation: gen, ExpiresAt: exp})
	}
	start := time.Now()
	fam := newID()
	// A chain used in order.
	for gen := range int64(4) {
		checkErr(t, fmt.Sprintf("ConsumeRefresh(gen %d)", gen), use(fam, a.ID, gen), nil)
	}
	// Another account cannot use the family; an unknown family past
	// generation 0 is unknown.
	checkErr(t, "ConsumeRefresh(other account)", use(fam, b.ID, 4), store.ErrNotFound)
	checkErr(t, "ConsumeRefresh(future gen)", use(fam, a.ID, 9), store.ErrNotFound)
	checkErr(t, "ConsumeRefresh(unknown family)", use(newID(), a.ID, 3), store.ErrNotFound)
	checkErr(t, "ConsumeRefresh(unknown account)", use(newID(), newID(), 0), store.ErrNotFound)
	// Reuse of an old generation revokes the family...
	checkErr(t, "ConsumeRefresh(reused gen 2)", use(fam, a.ID, 2), store.ErrRefreshReused)
	// ...so the current token no longer works either.
	checkErr(t, "ConsumeRefresh(gen 4 after reuse)", use(fam, a.ID, 4), store.ErrRevoked)
	checkErr(t, "ConsumeRefresh(reused again)", use(fam, a.ID, 0), store.ErrRevoked)

	// Reuse of the login's own token (generation 0).
	fam0 := newID()
	checkErr(t, "ConsumeRefresh(fam0 gen 0)", use(fam0, a.ID, 0), nil)
	checkErr(t, "ConsumeRefresh(fam0 gen 0 again)", use(fam0, a.ID, 0), store.ErrRefreshReused)

	// An untouched family still works.
	other := newID()
	checkErr(t, "ConsumeRefresh(other family)", use(other, a.ID, 0), nil)
	checkErr(t, "ConsumeRefresh(other family gen 1)", use(other, a.ID, 1), nil)

	revoked, err := s.RevokedFamilies(ctx, start)
	checkErr(t, "RevokedFamilies", err, nil)
	slices.SortFunc(revoked, func(x, y store.RevokedFamily) int { return strings.Compare(x.Family, y.Family) })
	wantFams := []string{fam, fam0}
	slices.Sort(wantFams)
	if len(revoked) != 2 || revoked[0].Family != wantFams[0] || revoked[1].Family != wantFams[1] {
		t.Fatalf("RevokedFamilies = %+v, want families %v", revoked, wantFams)
	}
	for _, f := range revoked {
		if f.AccountID != a.ID {
			t.Errorf("RevokedFamilies: account %s, want %s", f.AccountID, a.ID)
		}
		checkTime(t, "RevokedFamilies: RevokedAt", f.RevokedAt, start, time.Now())
	}
	later, err := s.RevokedFamilies(ctx, time.Now().Add(time.Minute))
	checkErr(t, "RevokedFamilies(future)", err, nil)
	if len(later) != 0 {
		t.Errorf("RevokedFamilies(future) = %+v, want none", later)
	}

	// Pruning drops families whose last token expired.
	n, err := s.PruneRefreshFamilies(ctx, exp.Add(-time.Minute))
	checkErr(t, "PruneRefreshFamilies(before expiry)", err, nil)
	if n != 0 {
		t.Errorf("PruneRefreshFamilies(before expiry) = %d, want 0", n)
	}
	n, err = s.PruneRefreshFamilies(ctx, exp.Add(time.Minute))
	checkErr(t, "PruneRefreshFamilies(after expiry)", err, nil)
	if n != 3 {
		t.Errorf("PruneRefreshFamilies(after expiry) = %d, want 3", n)
	}

	// Deleting the account deletes its families.
	fam2 := newID()
	checkErr(t, "ConsumeRefresh(fam2)", use(fam2, b.ID, 0), nil)
	checkErr(t, "DeleteAccount", s.DeleteAccount(ctx, b.ID), nil)
	checkErr(t, "ConsumeRefresh(fam2 of deleted)", use(fam2, b.ID, 1), store.ErrNotFound)
}

// testConcurrentRefreshReuse presents one refresh token from many
// goroutines at once: exactly one wins, the others see the reuse.
func testConcurrentRefreshReuse(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, store.Account{ID: newID(), Username: "alice"}, store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})
	for _, gen := range []int64{0, 1} {
		fam := newID()
		if gen == 1 {
			checkErr(t, "ConsumeRefresh(gen 0)", s.ConsumeRefresh(ctx, store.RefreshUse{Family: fam, AccountID: a.ID, ExpiresAt: time.Now().Add(time.Hour)}), nil)
		}
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = s.ConsumeRefresh(ctx, store.RefreshUse{Family: fam, AccountID: a.ID, Generation: gen, ExpiresAt: time.Now().Add(time.Hour)})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrRefreshReused), errors.Is(err, store.ErrRevoked):
			default:
				t.Errorf("gen %d: ConsumeRefresh = %v, want nil, ErrRefreshReused or ErrRevoked", gen, err)
			}
		}
		if ok != 1 {
			t.Errorf("gen %d: %d of %d concurrent uses succeeded, want 1", gen, ok, n)
		}
	}
}

func testListAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	var ids []string
	for i := range 7 {
		a := mustCreate(t, s, store.Account{ID: newID(), Username: fmt.Sprintf("user%d", i)},
			store.Credential{Kind: store.CredentialDevice, Subject: fmt.Sprintf("device-%d", i)})
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	for _, limit := range []int{1, 3, 7, 8} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > len(ids) {
					t.Fatalf("more than %d pages", len(ids))
				}
				page, next, err := s.ListAccounts(ctx, store.Page{Cursor: cursor, Limit: limit})
				checkErr(t, "ListAccounts", err, nil)
				if len(page) > limit || (next != "" && len(page) != limit) {
					t.Fatalf("page of %d with next %q, limit %d", len(page), next, limit)
				}
				for _, a := range page {
					got = append(got, a.ID)
					checkStoredTime(t, "ListAccounts: CreatedAt", a.CreatedAt)
				}
				if next == "" {
					break
				}
				cursor = next
			}
			if !slices.Equal(got, ids) {
				t.Errorf("ListAccounts pages = %v, want %v", got, ids)
			}
		})
	}
	all, next, err := s.ListAccounts(ctx, store.Page{})
	checkErr(t, "ListAccounts(default limit)", err, nil)
	if len(all) != len(ids) || next != "" {
		t.Errorf("ListAccounts(default limit) = %d accounts, next %q; want %d, \"\"", len(all), next, len(ids))
	}
	_, _, err = s.ListAccounts(ctx, store.Page{Cursor: "not a cursor!"})
	checkErr(t, "ListAccounts(bad cursor)", err, store.ErrBadCursor)
	_, _, err = s.ListAccounts(ctx, store.Page{Cursor: store.EncodeCursor("a", "b")})
	checkErr(t, "ListAccounts(cursor of two keys)", err, store.ErrBadCursor)
	if _, _, err = s.ListAccounts(ctx, store.Page{Limit: -1}); err == nil {
		t.Error("ListAccounts(limit -1): got nil error")
	}
}

func testInTx(t *testing.T, s store.Store) {
	ctx := t.Context()
	boom := errors.New("boom")
	alice := store.Account{ID: newID(), Username: "alice"}
	err := s.InTx(ctx, func(tx store.Tx) error {
		if _, err := tx.CreateAccount(ctx, alice, store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"}); err != nil {
			return err
		}
		// The transaction sees its own writes.
		if _, err := tx.Account(ctx, alice.ID); err != nil {
			return fmt.Errorf("read own write: %w", err)
		}
		if _, err := tx.RevokeSessions(ctx, alice.ID); err != nil {
			return err
		}
		return boom
	})
	checkErr(t, "InTx(rolled back)", err, boom)
	_, err = s.Account(ctx, alice.ID)
	checkErr(t, "Account after rollback", err, store.ErrNotFound)

	func() {
		defer func() {
			if recover() == nil {
				t.Error("InTx did not propagate the panic")
			}
		}()
		_ = s.InTx(ctx, func(tx store.Tx) error {
			_, _ = tx.CreateAccount(ctx, alice, store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})
			panic("boom")
		})
	}()
	_, err = s.Account(ctx, alice.ID)
	checkErr(t, "Account after panic", err, store.ErrNotFound)

	err = s.InTx(ctx, func(tx store.Tx) error {
		if _, err := tx.CreateAccount(ctx, alice, store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"}); err != nil {
			return err
		}
		if err := tx.LinkCredential(ctx, store.Credential{Kind: store.CredentialCustom, Subject: "custom-alice", AccountID: alice.ID}); err != nil {
			return err
		}
		_, err := tx.RevokeSessions(ctx, alice.ID)
		return err
	})
	checkErr(t, "InTx(committed)", err, nil)
	got, err := s.Account(ctx, alice.ID)
	checkErr(t, "Account after commit", err, nil)
	if got.SessionEpoch != 1 {
		t.Errorf("SessionEpoch after commit = %d, want 1", got.SessionEpoch)
	}
	creds, err := s.Credentials(ctx, alice.ID)
	checkErr(t, "Credentials after commit", err, nil)
	if len(creds) != 2 {
		t.Errorf("Credentials after commit = %d, want 2", len(creds))
	}

	// A failing statement inside a transaction reports the store's error.
	err = s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.CreateAccount(ctx, store.Account{ID: newID(), Username: "alice"}, store.Credential{Kind: store.CredentialDevice, Subject: "device-x"})
		return err
	})
	checkErr(t, "InTx(conflict)", err, store.ErrAlreadyExists)

	// Transactions from many goroutines serialise without failing.
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.InTx(ctx, func(tx store.Tx) error {
				_, err := tx.RevokeSessions(ctx, alice.ID)
				return err
			})
		})
	}
	wg.Wait()
	for _, err := range errs {
		checkErr(t, "concurrent InTx", err, nil)
	}
	got, err = s.Account(ctx, alice.ID)
	checkErr(t, "Account", err, nil)
	if got.SessionEpoch != 7 {
		t.Errorf("SessionEpoch after 6 concurrent revocations = %d, want 7", got.SessionEpoch)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	err = s.InTx(canceled, func(tx store.Tx) error { return nil })
	checkErr(t, "InTx(canceled)", err, context.Canceled)
}
