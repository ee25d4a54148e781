// Package sqlite implements store.Store on a SQLite file, for single-node
// mode. It uses the pure-Go driver modernc.org/sqlite, so taisen builds
// without cgo.
//
// SQLite admits one writer at a time. A Store therefore keeps two pools on
// the same file: a write pool of exactly one connection, whose transactions
// begin IMMEDIATE, so writers queue in Go instead of failing with
// "database is locked", and a pool of read-only connections that, thanks to
// the write-ahead log, read concurrently with the writer and with each
// other.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/taisen-dev/taisen/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// timeLayout is how timestamps are stored: UTC, fixed width, millisecond
// precision, so that they compare as strings.
const timeLayout = "2006-01-02T15:04:05.000Z"

// Store is a store.Store on a SQLite file. It is safe for concurrent use.
type Store struct {
	// write holds the one connection that writes.
	write *sql.DB
	// read holds query-only connections.
	read *sql.DB
}

var _ store.Store = (*Store)(nil)

// Open opens the SQLite database at path, creating the file and its parent
// directory if missing, applies pending migrations and returns the Store.
// Migrations applied are logged at Info level on logger, which may be nil.
// path is a file name, not a URI; in-memory databases are not supported
// because the read and write pools must share the file.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: open: path %q is not a file name", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: open: create directory: %w", err)
	}

	write, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	if err := write.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", abs, err), write.Close())
	}
	if err := migrate(ctx, write, logger); err != nil {
		return nil, errors.Join(err, write.Close())
	}

	// Open the readers only now: the file exists and is in WAL mode.
	readers := max(4, runtime.GOMAXPROCS(0))
	read, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open: %w", err), write.Close())
	}
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	if err := read.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", abs, err), read.Close(), write.Close())
	}
	return &Store{write: write, read: read}, nil
}

// dsn returns the modernc.org/sqlite data source name for the file at the
// absolute path abs.
func dsn(abs string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Set("_query_only", "1")
	} else {
		// Take the write lock when the transaction starts, not at its first
		// write: a deferred transaction that reads then writes can fail with
		// SQLITE_BUSY without waiting on busy_timeout.
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// migrate applies the pending migrations on db.
func migrate(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(goose.NopLogger()),
	)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	// p.Close would close db, which the Store keeps.
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	for _, r := range results {
		logger.InfoContext(ctx, "store migration applied",
			slog.String("engine", "sqlite"),
			slog.Int64("version", r.Source.Version),
			slog.String("file", filepath.Base(r.Source.Path)),
			slog.Duration("duration", r.Duration))
	}
	return nil
}

// CreateAccount implements store.Store.
func (s *Store) CreateAccount(ctx context.Context, a store.Account, c store.Credential) (store.Account, error) {
	if c.AccountID != "" && c.AccountID != a.ID {
		return store.Account{}, fmt.Errorf("sqlite: create account: credential account id %q differs from account id %q", c.AccountID, a.ID)
	}
	now := now()
	a.CreatedAt, a.UpdatedAt = now, now
	a.DisabledAt = store.Timestamp(a.DisabledAt)

	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: create account: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // No-op after Commit.
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO accounts (id, username, display_name, created_at, updated_at, disabled_at)
		 VALUES (?, ?, ?, ?, ?, ?)`,
		a.ID, a.Username, a.DisplayName, formatTime(now), formatTime(now), nullTime(a.DisabledAt),
	); err != nil {
		return store.Account{}, fmt.Errorf("sqlite: create account: %w", mapErr(err))
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO credentials (kind, subject, account_id, secret, created_at) VALUES (?, ?, ?, ?, ?)`,
		string(c.Kind), c.Subject, a.ID, c.Secret, formatTime(now),
	); err != nil {
		return store.Account{}, fmt.Errorf("sqlite: create account: %w", mapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return store.Account{}, fmt.Errorf("sqlite: create account: %w", mapErr(err))
	}
	return a, nil
}

const selectAccount = `SELECT id, username, display_name, created_at, updated_at, disabled_at FROM accounts`

// Account implements store.Store.
func (s *Store) Account(ctx context.Context, id string) (store.Account, error) {
	a, err := scanAccount(s.read.QueryRowContext(ctx, selectAccount+` WHERE id = ?`, id))
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: get account: %w", err)
	}
	return a, nil
}

// AccountByUsername implements store.Store.
func (s *Store) AccountByUsername(ctx context.Context, username string) (store.Account, error) {
	a, err := scanAccount(s.read.QueryRowContext(ctx, selectAccount+` WHERE username = ?`, username))
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: get account by username: %w", err)
	}
	return a, nil
}

func scanAccount(row *sql.Row) (store.Account, error) {
	var (
		a                      store.Account
		created, updated       string
		disabled               sql.NullString
		errCreated, errUpdated error
		errDisabled            error
	)
	if err := row.Scan(&a.ID, &a.Username, &a.DisplayName, &created, &updated, &disabled); err != nil {
		return store.Account{}, mapErr(err)
	}
	a.CreatedAt, errCreated = parseTime(created)
	a.UpdatedAt, errUpdated = parseTime(updated)
	if disabled.Valid {
		a.DisabledAt, errDisabled = parseTime(disabled.String)
	}
	if err := errors.Join(errCreated, errUpdated, errDisabled); err != nil {
		return store.Account{}, err
	}
	return a, nil
}

// Credential implements store.Store.
func (s *Store) Credential(ctx context.Context, kind store.CredentialKind, subject string) (store.Credential, error) {
	c := store.Credential{Kind: kind, Subject: subject}
	var created string
	err := s.read.QueryRowContext(ctx,
		`SELECT account_id, secret, created_at FROM credentials WHERE kind = ? AND subject = ?`,
		string(kind), subject,
	).Scan(&c.AccountID, &c.Secret, &created)
	if err != nil {
		return store.Credential{}, fmt.Errorf("sqlite: get credential: %w", mapErr(err))
	}
	if c.CreatedAt, err = parseTime(created); err != nil {
		return store.Credential{}, fmt.Errorf("sqlite: get credential: %w", err)
	}
	return c, nil
}

// Credentials implements store.Store. It returns ErrNotFound when the
// account does not exist and an empty slice when it has no credential.
func (s *Store) Credentials(ctx context.Context, accountID string) ([]store.Credential, error) {
	// The left join tells a missing account (no row) from an account
	// without credentials (one row of NULLs) in one query.
	rows, err := s.read.QueryContext(ctx,
		`SELECT c.kind, c.subject, c.secret, c.created_at
		 FROM accounts a LEFT JOIN credentials c ON c.account_id = a.id
		 WHERE a.id = ?
		 ORDER BY c.kind, c.subject`,
		accountID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list credentials: %w", mapErr(err))
	}
	defer rows.Close()
	found := false
	creds := []store.Credential{}
	for rows.Next() {
		found = true
		var kind, subject, secret, created sql.NullString
		if err := rows.Scan(&kind, &subject, &secret, &created); err != nil {
			return nil, fmt.Errorf("sqlite: list credentials: %w", mapErr(err))
		}
		if !kind.Valid {
			continue
		}
		t, err := parseTime(created.String)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list credentials: %w", err)
		}
		creds = append(creds, store.Credential{
			Kind:      store.CredentialKind(kind.String),
			Subject:   subject.String,
			AccountID: accountID,
			Secret:    secret.String,
			CreatedAt: t,
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list credentials: %w", mapErr(err))
	}
	if !found {
		return nil, fmt.Errorf("sqlite: list credentials: %w", store.ErrNotFound)
	}
	return creds, nil
}

// LinkCredential implements store.Store.
func (s *Store) LinkCredential(ctx context.Context, c store.Credential) error {
	_, err := s.write.ExecContext(ctx,
		`INSERT INTO credentials (kind, subject, account_id, secret, created_at) VALUES (?, ?, ?, ?, ?)`,
		string(c.Kind), c.Subject, c.AccountID, c.Secret, formatTime(now()))
	if err != nil {
		return fmt.Errorf("sqlite: link credential: %w", mapErr(err))
	}
	return nil
}

// UnlinkCredential implements store.Store.
func (s *Store) UnlinkCredential(ctx context.Context, kind store.CredentialKind, subject string) error {
	res, err := s.write.ExecContext(ctx,
		`DELETE FROM credentials WHERE kind = ? AND subject = ?`, string(kind), subject)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("sqlite: unlink credential: %w", err)
	}
	return nil
}

// SetAccountDisabled implements store.Store.
func (s *Store) SetAccountDisabled(ctx context.Context, id string, at time.Time) error {
	res, err := s.write.ExecContext(ctx,
		`UPDATE accounts SET disabled_at = ?, updated_at = ? WHERE id = ?`,
		nullTime(store.Timestamp(at)), formatTime(now()), id)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("sqlite: set account disabled: %w", err)
	}
	return nil
}

// Ping implements store.Store. It checks both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.write.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := s.read.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close implements store.Store. It waits for queries in progress to end.
// Calling Close again returns nil.
func (s *Store) Close() error {
	if err := errors.Join(s.read.Close(), s.write.Close()); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// affectedOne turns the result of a statement that must change one row
// into an error: ErrNotFound when it changed none.
func affectedOne(res sql.Result, err error) error {
	if err != nil {
		return mapErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// mapErr translates driver errors into the store's sentinel errors, keeping
// the original in the chain.
func mapErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var serr *sqlite.Error
	if errors.As(err, &serr) {
		switch serr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w: %w", store.ErrAlreadyExists, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
	}
	return err
}

// now returns the current time as the store records it.
func now() time.Time { return store.Timestamp(time.Now()) }

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse timestamp %q: %w", s, err)
	}
	return t, nil
}
