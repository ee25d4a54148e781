// Package postgres implements store.Store on PostgreSQL, for cluster mode,
// with a pgx connection pool.
//
// The tables live in the connection's current schema: the first existing
// schema of its search_path. Setting search_path in the URL
// (postgres://host/db?search_path=tenant) runs a Store isolated in that
// schema, migration history included, so several deployments or test runs
// can share one database.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taisen-dev/taisen/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// SQLSTATE codes the store translates.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// Store is a store.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a keyword/value
// connection string, as pgxpool.ParseConfig accepts, pool_max_conns and
// search_path included), applies pending migrations to the current schema
// and returns the Store. The schema must exist. Migrations applied are
// logged at Info level on logger, which may be nil.
func Open(ctx context.Context, url string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := migrate(ctx, pool, logger); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// CreateAccount implements store.Store.
func (s *Store) CreateAccount(ctx context.Context, a store.Account, c store.Credential) (store.Account, error) {
	if c.AccountID != "" && c.AccountID != a.ID {
		return store.Account{}, fmt.Errorf("postgres: create account: credential account id %q differs from account id %q", c.AccountID, a.ID)
	}
	now := now()
	a.CreatedAt, a.UpdatedAt = now, now
	a.DisabledAt = store.Timestamp(a.DisabledAt)
	// One statement, so one round trip and atomic without a transaction: a
	// unique violation on either insert aborts both.
	_, err := s.pool.Exec(ctx,
		`WITH a AS (
			INSERT INTO accounts (id, username, display_name, created_at, updated_at, disabled_at)
			VALUES ($1, $2, $3, $4, $4, $5)
			RETURNING id
		)
		INSERT INTO credentials (kind, subject, account_id, secret, created_at)
		SELECT $6, $7, a.id, $8, $4 FROM a`,
		a.ID, a.Username, a.DisplayName, now, nullTime(a.DisabledAt),
		string(c.Kind), c.Subject, c.Secret)
	if err != nil {
		return store.Account{}, fmt.Errorf("postgres: create account: %w", mapErr(err))
	}
	return a, nil
}

const selectAccount = `SELECT id, username, display_name, created_at, updated_at, disabled_at FROM accounts`

// Account implements store.Store.
func (s *Store) Account(ctx context.Context, id string) (store.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, selectAccount+` WHERE id = $1`, id))
	if err != nil {
		return store.Account{}, fmt.Errorf("postgres: get account: %w", err)
	}
	return a, nil
}

// AccountByUsername implements store.Store.
func (s *Store) AccountByUsername(ctx context.Context, username string) (store.Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, selectAccount+` WHERE username = $1`, username))
	if err != nil {
		return store.Account{}, fmt.Errorf("postgres: get account by username: %w", err)
	}
	return a, nil
}

func scanAccount(row pgx.Row) (store.Account, error) {
	var (
		a        store.Account
		disabled *time.Time
	)
	if err := row.Scan(&a.ID, &a.Username, &a.DisplayName, &a.CreatedAt, &a.UpdatedAt, &disabled); err != nil {
		return store.Account{}, mapErr(err)
	}
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	if disabled != nil {
		a.DisabledAt = disabled.UTC()
	}
	return a, nil
}

// Credential implements store.Store.
func (s *Store) Credential(ctx context.Context, kind store.CredentialKind, subject string) (store.Credential, error) {
	c := store.Credential{Kind: kind, Subject: subject}
	err := s.pool.QueryRow(ctx,
		`SELECT account_id, secret, created_at FROM credentials WHERE kind = $1 AND subject = $2`,
		string(kind), subject,
	).Scan(&c.AccountID, &c.Secret, &c.CreatedAt)
	if err != nil {
		return store.Credential{}, fmt.Errorf("postgres: get credential: %w", mapErr(err))
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return c, nil
}

// Credentials implements store.Store. It returns ErrNotFound when the
// account does not exist and an empty slice when it has no credential.
func (s *Store) Credentials(ctx context.Context, accountID string) ([]store.Credential, error) {
	// The left join tells a missing account (no row) from an account
	// without credentials (one row of NULLs) in one query.
	rows, err := s.pool.Query(ctx,
		`SELECT c.kind, c.subject, c.secret, c.created_at
		 FROM accounts a LEFT JOIN credentials c ON c.account_id = a.id
		 WHERE a.id = $1
		 ORDER BY c.kind, c.subject`,
		accountID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list credentials: %w", mapErr(err))
	}
	defer rows.Close()
	found := false
	creds := []store.Credential{}
	for rows.Next() {
		found = true
		var (
			kind, subject, secret *string
			created               *time.Time
		)
		if err := rows.Scan(&kind, &subject, &secret, &created); err != nil {
			return nil, fmt.Errorf("postgres: list credentials: %w", mapErr(err))
		}
		if kind == nil {
			continue
		}
		creds = append(creds, store.Credential{
			Kind:      store.CredentialKind(*kind),
			Subject:   *subject,
			AccountID: accountID,
			Secret:    *secret,
			CreatedAt: created.UTC(),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list credentials: %w", mapErr(err))
	}
	if !found {
		return nil, fmt.Errorf("postgres: list credentials: %w", store.ErrNotFound)
	}
	return creds, nil
}

// LinkCredential implements store.Store.
func (s *Store) LinkCredential(ctx context.Context, c store.Credential) error {
	_, err := s.pool.Exec(ctx,
		`INSERT INTO credentials (kind, subject, account_id, secret, created_at) VALUES ($1, $2, $3, $4, $5)`,
		string(c.Kind), c.Subject, c.AccountID, c.Secret, now())
	if err != nil {
		return fmt.Errorf("postgres: link credential: %w", mapErr(err))
	}
	return nil
}

// UnlinkCredential implements store.Store.
func (s *Store) UnlinkCredential(ctx context.Context, kind store.CredentialKind, subject string) error {
	tag, err := s.pool.Exec(ctx,
		`DELETE FROM credentials WHERE kind = $1 AND subject = $2`, string(kind), subject)
	if err := affectedOne(tag, err); err != nil {
		return fmt.Errorf("postgres: unlink credential: %w", err)
	}
	return nil
}

// SetAccountDisabled implements store.Store.
func (s *Store) SetAccountDisabled(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx,
		`UPDATE accounts SET disabled_at = $1, updated_at = $2 WHERE id = $3`,
		nullTime(store.Timestamp(at)), now(), id)
	if err := affectedOne(tag, err); err != nil {
		return fmt.Errorf("postgres: set account disabled: %w", err)
	}
	return nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close implements store.Store. It waits for connections in use to be
// released. Calling Close again returns nil.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// affectedOne turns the result of a statement that must change one row
// into an error: ErrNotFound when it changed none.
func affectedOne(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// mapErr translates driver errors into the store's sentinel errors, keeping
// the original in the chain.
func mapErr(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case uniqueViolation:
			return fmt.Errorf("%w: %w", store.ErrAlreadyExists, err)
		case foreignKeyViolation:
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
	}
	return err
}

// now returns the current time as the store records it.
func now() time.Time { return store.Timestamp(time.Now()) }

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
