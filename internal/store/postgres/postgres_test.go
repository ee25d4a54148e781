package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/taisen-dev/taisen/internal/store"
	"github.com/taisen-dev/taisen/internal/store/storetest"
)

// urlEnv names the variable holding the database the tests use; each test
// works in a schema of its own, created and dropped around it.
const urlEnv = "TAISEN_TEST_POSTGRES_URL"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConformance(t *testing.T) {
	testURL(t) // Skip once rather than in every test of the suite.
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTest(t, newSchema(t, "taisen_test_"), slog.New(slog.NewTextHandler(t.Output(), nil)))
	})
}

// testURL returns the database URL, or skips the test.
func testURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(urlEnv)
	if u == "" {
		tb.Skipf("PostgreSQL tests disabled: set %s to a database the tests may create schemas in, e.g. %s='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'", urlEnv, urlEnv)
	}
	return u
}

// newSchema creates a schema named prefix and a random suffix, drops it
// when the test ends, and returns the database URL with search_path set to
// it.
func newSchema(tb testing.TB, prefix string) string {
	tb.Helper()
	base := testURL(tb)
	schema := prefix + strings.ToLower(rand.Text()[:12])
	exec(tb, tb.Context(), base, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	tb.Cleanup(func() {
		// tb.Context is canceled by now.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		exec(tb, ctx, base, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	})
	return withSearchPath(tb, base, pgx.Identifier{schema}.Sanitize())
}

// exec runs sql on a connection of its own to the database at dbURL.
func exec(tb testing.TB, ctx context.Context, dbURL, sql string, args ...any) {
	tb.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// queryInt runs sql, which returns one integer, on a connection of its own.
func queryInt(tb testing.TB, dbURL, sql string, args ...any) int {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), dbURL)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(tb.Context(), sql, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	return n
}

// withSearchPath returns dbURL, a URL or keyword/value string, with its
// search_path set to searchPath.
func withSearchPath(tb testing.TB, dbURL, searchPath string) string {
	tb.Helper()
	if !strings.HasPrefix(dbURL, "postgres://") && !strings.HasPrefix(dbURL, "postgresql://") {
		return dbURL + " search_path='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(searchPath) + "'"
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatalf("parse %s: %v", urlEnv, err)
	}
	q := u.Query()
	q.Set("search_path", searchPath)
	// pgx decodes the query like libpq, where "+" is no space.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String()
}

// openTest opens a Store on dbURL and closes it when the test ends.
func openTest(tb testing.TB, dbURL string, logger *slog.Logger) *Store {
	tb.Helper()
	s, err := Open(tb.Context(), dbURL, logger)
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

// TestSchemas checks that Stores in two schemas of one database keep apart,
// migration history included, whatever the schema's name.
func TestSchemas(t *testing.T) {
	ctx := t.Context()
	base := testURL(t)
	tests := []struct {
		name   string
		prefix string
	}{
		{"plain names", "taisen_test_"},
		{"names that need quoting", `Taisen Test's "Schema" \ `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logA, logB recorder
			urlA, urlB := newSchema(t, tt.prefix), newSchema(t, tt.prefix)
			a := openTest(t, urlA, slog.New(&logA))
			b := openTest(t, urlB, slog.New(&logB))
			if got, want := logA.versions(), []int64{1, 2, 3, 4}; !slices.Equal(got, want) {
				t.Errorf("Open of schema A: got migrations %v logged, want %v", got, want)
			}
			if got, want := logB.versions(), []int64{1, 2, 3, 4}; !slices.Equal(got, want) {
				t.Errorf("Open of schema B: got migrations %v logged, want %v", got, want)
			}
			for _, s := range []struct {
				name string
				url  string
				rec  *recorder
			}{{"A", urlA, &logA}, {"B", urlB, &logB}} {
				schema := s.rec.schema()
				n := queryInt(t, base, `SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = ANY($2)`,
					schema, []string{versionTable, "accounts", "credentials"})
				if n != 3 {
					t.Errorf("schema %s (%q): got %d of the tables goose_db_version, accounts, credentials, want 3", s.name, schema, n)
				}
			}

			acct, err := a.CreateAccount(ctx, store.Account{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Username: "alice"},
				store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})
			if err != nil {
				t.Fatalf("CreateAccount in A: got error %v, want nil", err)
			}
			if _, err := b.Account(ctx, acct.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Account in B: got error %v, want %v", err, store.ErrNotFound)
			}
			// The same keys are free in B.
			if _, err := b.CreateAccount(ctx, store.Account{ID: acct.ID, Username: "alice"},
				store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"}); err != nil {
				t.Errorf("CreateAccount in B: got error %v, want nil", err)
			}
		})
	}
}

// TestReopen checks that migrations run once and data survive a reopen.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	dbURL := newSchema(t, "taisen_test_")
	var first recorder
	s, err := Open(ctx, dbURL, slog.New(&first))
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	a, err := s.CreateAccount(ctx, store.Account{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Username: "alice"},
		store.Credential{Kind: store.CredentialDevice, Subject: "device-alice"})
	if err != nil {
		t.Fatalf("CreateAccount: got error %v, want nil", err)
	}
	s.Close()
	if got, want := first.versions(), []int64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("first Open: got migrations %v logged, want %v", got, want)
	}

	var second recorder
	s = openTest(t, dbURL, slog.New(&second))
	if got := second.versions(); len(got) != 0 {
		t.Errorf("second Open: got migrations %v logged, want none", got)
	}
	got, err := s.Account(ctx, a.ID)
	if err != nil {
		t.Fatalf("Account after reopen: got error %v, want nil", err)
	}
	if got.ID != a.ID || !got.CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("Account after reopen: got %+v, want %+v", got, a)
	}
}

// TestConcurrentOpen checks that nodes opening one fresh schema together
// all succeed and migrate it once.
func TestConcurrentOpen(t *testing.T) {
	const nodes = 4
	dbURL := newSchema(t, "taisen_test_")
	var rec recorder
	logger := slog.New(&rec)
	errs := make([]error, nodes)
	stores := make([]*Store, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dbURL, logger) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: got error %v, want nil", i, err)
			continue
		}
		stores[i].Close()
	}
	if got, want := rec.versions(), []int64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("got migrations %v logged, want %v", got, want)
	}
}

func TestOpenRejects(t *testing.T) {
	base := testURL(t)
	tests := []struct {
		name string
		url  string
	}{
		{"malformed URL", "postgres://%zz"},
		{"missing schema", withSearchPath(t, base, "taisen_test_missing_"+strings.ToLower(rand.Text()[:12]))},
		{"missing database", func() string {
			u, err := url.Parse(base)
			if err != nil {
				t.Fatal(err)
			}
			u.Path = "/taisen_test_missing_database"
			return u.String()
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.Context(), tt.url, nil)
			t.Logf("Open(%s): %v", tt.url, err)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s): got error nil, want an error", tt.url)
			}
		})
	}
}

// recorder is a slog.Handler that keeps what the migration logs said.
type recorder struct {
	mu      sync.Mutex
	vers    []int64
	schemas []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Level != slog.LevelInfo || rec.Message != "store migration applied" {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "version":
			r.vers = append(r.vers, a.Value.Int64())
		case "schema":
			r.schemas = append(r.schemas, a.Value.String())
		}
		return true
	})
	return nil
}

func (r *recorder) versions() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.vers)
}

// schema returns the schema the last migration logged ran in.
func (r *recorder) schema() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.schemas) == 0 {
		return ""
	}
	return r.schemas[len(r.schemas)-1]
}
