package sqlite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/taisen-dev/taisen/internal/store"
	"github.com/taisen-dev/taisen/internal/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "taisen.db"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	})
}

// openTest opens the Store at path and closes it when the test ends.
func openTest(tb testing.TB, path string, logger *slog.Logger) *Store {
	tb.Helper()
	s, err := Open(tb.Context(), path, logger)
	if err != nil {
		tb.Fatalf("Open: got error %v, want nil", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestOpenCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "taisen.db")
	openTest(t, path, nil)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("Stat(%s): got error %v, want nil", path, err)
	}
}

func TestOpenRejects(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	notADB := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(notADB, []byte("this is not an SQLite database, not even a header"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"empty path", ""},
		{"in-memory", ":memory:"},
		{"parent is a file", filepath.Join(file, "taisen.db")},
		{"not a database", notADB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.Context(), tt.path, nil)
			t.Logf("Open(%q): %v", tt.path, err)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q): got error nil, want an error", tt.path)
			}
		})
	}
}

func TestPragmas(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "taisen.db"), nil)
	tests := []struct {
		pragma string
		write  string
		read   string
	}{
		{"journal_mode", "wal", "wal"},
		{"busy_timeout", "5000", "5000"},
		{"foreign_keys", "1", "1"},
		{"synchronous", "1", "1"}, // NORMAL
		{"query_only", "0", "1"},
	}
	for _, tt := range tests {
		var got string
		if err := s.write.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("write PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.write {
			t.Errorf("write pool PRAGMA %s: got %q, want %q", tt.pragma, got, tt.write)
		}
		if err := s.read.QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("read PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.read {
			t.Errorf("read pool PRAGMA %s: got %q, want %q", tt.pragma, got, tt.read)
		}
	}
	if _, err := s.read.ExecContext(t.Context(), `DELETE FROM accounts`); err == nil {
		t.Errorf("DELETE on the read pool: got error nil, want an error")
	}
}

// TestReopen checks that migrations run once and are logged, and that data
// survive a reopen.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "taisen.db")

	var first recorder
	s, err := Open(ctx, path, slog.New(&first))
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	a, err := s.CreateAccount(ctx, store.Account{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Username: "alice"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})
	if err != nil {
		t.Fatalf("CreateAccount: got error %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}
	if got, want := first.versions(), []int64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("first Open: got migrations %v logged, want %v", got, want)
	}

	var second recorder
	s = openTest(t, path, slog.New(&second))
	if got := second.versions(); len(got) != 0 {
		t.Errorf("second Open: got migrations %v logged, want none", got)
	}
	got, err := s.Account(ctx, a.ID)
	if err != nil {
		t.Fatalf("Account after reopen: got error %v, want nil", err)
	}
	if got.ID != a.ID || got.Username != a.Username || !got.CreatedAt.Equal(a.CreatedAt) || !got.UpdatedAt.Equal(a.UpdatedAt) {
		t.Errorf("Account after reopen: got %+v, want %+v", got, a)
	}
}

// recorder is a slog.Handler that keeps the migration versions logged.
type recorder struct {
	mu   sync.Mutex
	vers []int64
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level != slog.LevelInfo || rec.Message != "store migration applied" {
		return nil
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "version" {
			r.mu.Lock()
			r.vers = append(r.vers, a.Value.Int64())
			r.mu.Unlock()
		}
		return true
	})
	return nil
}

func (r *recorder) versions() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.vers...)
}

// TestPointReadsHonourDoneContext checks that the point lookups, which run
// without their context's cancellation, still refuse a context that is
// already done, and answer under a live cancellable one.
func TestPointReadsHonourDoneContext(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "taisen.db"), nil)
	live, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, err := s.CreateAccount(live, store.Account{ID: "acc-1", Username: "alice"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-0001", AccountID: "acc-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, got, err := s.CredentialAccount(live, store.CredentialDevice, "device-0001"); err != nil || got.ID != a.ID {
		t.Fatalf("CredentialAccount = %+v, %v; want account %s", got, err, a.ID)
	}
	if got, err := s.Account(live, a.ID); err != nil || got.ID != a.ID {
		t.Fatalf("Account = %+v, %v; want account %s", got, err, a.ID)
	}
	cancel()
	if _, _, err := s.CredentialAccount(live, store.CredentialDevice, "device-0001"); !errors.Is(err, context.Canceled) {
		t.Errorf("CredentialAccount with a canceled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Account(live, a.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Account with a canceled context: err = %v, want context.Canceled", err)
	}
}

// TestLoginLookupsConcurrent checks that concurrent logins, which share
// the lookup workers, each get their own account.
func TestLoginLookupsConcurrent(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "taisen.db"), nil)
	const accounts, rounds = 16, 40
	for i := range accounts {
		id := fmt.Sprintf("acc-%02d", i)
		if _, err := s.CreateAccount(t.Context(), store.Account{ID: id, Username: "user-" + id},
			store.Credential{Kind: store.CredentialDevice, Subject: "device-" + id, AccountID: id}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range accounts {
		id := fmt.Sprintf("acc-%02d", i)
		wg.Go(func() {
			for range rounds {
				c, a, err := s.CredentialAccount(t.Context(), store.CredentialDevice, "device-"+id)
				if err != nil || a.ID != id || a.Username != "user-"+id || c.AccountID != id || c.Subject != "device-"+id {
					t.Errorf("CredentialAccount(device-%s) = %+v, %+v, %v", id, c, a, err)
					return
				}
				if _, _, err := s.CredentialAccount(t.Context(), store.CredentialDevice, "missing-"+id); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("CredentialAccount(missing-%s): err = %v, want ErrNotFound", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestLoginLookupAfterClose checks that a lookup on a closed Store fails
// at once instead of waiting for workers that are gone.
func TestLoginLookupAfterClose(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "taisen.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CredentialAccount(t.Context(), store.CredentialDevice, "device-0001"); err == nil {
		t.Error("CredentialAccount on a closed Store succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}
