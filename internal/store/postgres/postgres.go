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
// pgx prepares and caches each statement per connection on first use.
type Store struct {
	conn
	pool *pgxpool.Pool
}

var (
	_ store.Store = (*Store)(nil)
	_ store.Tx    = (*conn)(nil)
)

// querier is what *pgxpool.Pool and pgx.Tx have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// conn runs the store's statements: on the pool for a Store, on one
// transaction for a Tx.
type conn struct {
	q querier
	// pool starts transactions; nil inside one.
	pool *pgxpool.Pool
}

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
	return &Store{conn: conn{q: pool, pool: pool}, pool: pool}, nil
}

// InTx implements store.Store.
func (s *Store) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.inTx(ctx, func(c *conn) error { return fn(c) })
}

// inTx runs fn on a transaction: c itself when c is one already.
func (c *conn) inTx(ctx context.Context, fn func(c *conn) error) error {
	if c.pool == nil {
		return fn(c)
	}
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", mapErr(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // No-op after Commit.
	if err := fn(&conn{q: tx}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", mapErr(err))
	}
	return nil
}

// CreateAccount implements store.Store.
func (c *conn) CreateAccount(ctx context.Context, a store.Account, cred store.Credential) (store.Account, error) {
	if cred.AccountID != "" && cred.AccountID != a.ID {
		return store.Account{}, fmt.Errorf("postgres: create account: credential account id %q differs from account id %q", cred.AccountID, a.ID)
	}
	now := now()
	a.CreatedAt, a.UpdatedAt = now, now
	a.DisabledAt = store.Timestamp(a.DisabledAt)
	a.SessionEpoch = 0
	// One statement, so one round trip and atomic without a transaction: a
	// unique violation on either insert aborts both.
	_, err := c.q.Exec(ctx,
		`WITH a AS (
			INSERT INTO accounts (id, username, display_name, created_at, updated_at, disabled_at)
			VALUES ($1, $2, $3, $4, $4, $5)
			RETURNING id
		)
		INSERT INTO credentials (kind, subject, account_id, secret, created_at)
		SELECT $6, $7, a.id, $8, $4 FROM a`,
		a.ID, a.Username, a.DisplayName, now, nullTime(a.DisabledAt),
		string(cred.Kind), cred.Subject, cred.Secret)
	if err != nil {
		return store.Account{}, fmt.Errorf("postgres: create account: %w", mapErr(err))
	}
	return a, nil
}

const accountColumns = `id, username, display_name, created_at, updated_at, disabled_at, session_epoch`

const selectAccount = `SELECT ` + accountColumns + ` FROM accounts`

// Account implements store.Store.
func (c *conn) Account(ctx context.Context, id string) (store.Account, error) {
	a, err := scanAccount(c.q.QueryRow(ctx, selectAccount+` WHERE id = $1`, id))
	if err != nil {
		return store.Account{}, fmt.Errorf("postgres: get account: %w", err)
	}
	return a, nil
}

// AccountByUsername implements store.Store.
func (c *conn) AccountByUsername(ctx context.Context, username string) (store.Account, error) {
	a, err := scanAccount(c.q.QueryRow(ctx, selectAccount+` WHERE username = $1`, username))
	if err != nil {
		return store.Account{}, fmt.Errorf("postgres: get account by username: %w", err)
	}
	return a, nil
}

// ListAccounts implements store.Store. Ids compare in byte order ("C"
// collation), as in SQLite.
func (c *conn) ListAccounts(ctx context.Context, p store.Page) ([]store.Account, string, error) {
	limit, err := p.Size()
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list accounts: %w", err)
	}
	after := ""
	if p.Cursor != "" {
		keys, err := store.DecodeCursor(p.Cursor, 1)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: list accounts: %w", err)
		}
		after = keys[0]
	}
	rows, err := c.q.Query(ctx,
		selectAccount+` WHERE id COLLATE "C" > $1 ORDER BY id COLLATE "C" LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list accounts: %w", mapErr(err))
	}
	defer rows.Close()
	accounts := []store.Account{}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: list accounts: %w", err)
		}
		accounts = append(accounts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("postgres: list accounts: %w", mapErr(err))
	}
	next := ""
	if len(accounts) > limit {
		accounts = accounts[:limit]
		next = store.EncodeCursor(accounts[limit-1].ID)
	}
	return accounts, next, nil
}

func scanAccount(row pgx.Row, extra ...any) (store.Account, error) {
	var (
		a        store.Account
		disabled *time.Time
	)
	dest := append([]any{&a.ID, &a.Username, &a.DisplayName, &a.CreatedAt, &a.UpdatedAt, &disabled, &a.SessionEpoch}, extra...)
	if err := row.Scan(dest...); err != nil {
		return store.Account{}, mapErr(err)
	}
	a.CreatedAt, a.UpdatedAt = a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	if disabled != nil {
		a.DisabledAt = disabled.UTC()
	}
	return a, nil
}

// SetUsername implements store.Store.
func (c *conn) SetUsername(ctx context.Context, id, username string) error {
	tag, err := c.q.Exec(ctx, `UPDATE accounts SET username = $1, updated_at = $2 WHERE id = $3`, username, now(), id)
	if err := affectedOne(tag, err); err != nil {
		return fmt.Errorf("postgres: set username: %w", err)
	}
	return nil
}

// SetAccountDisabled implements store.Store.
func (c *conn) SetAccountDisabled(ctx context.Context, id string, at time.Time) error {
	tag, err := c.q.Exec(ctx,
		`UPDATE accounts SET disabled_at = $1, updated_at = $2 WHERE id = $3`,
		nullTime(store.Timestamp(at)), now(), id)
	if err := affectedOne(tag, err); err != nil {
		return fmt.Errorf("postgres: set account disabled: %w", err)
	}
	return nil
}

// DeleteAccount implements store.Store.
func (c *conn) DeleteAccount(ctx context.Context, id string) error {
	err := c.inTx(ctx, func(tx *conn) error {
		// Credentials and refresh families go with the account (ON DELETE
		// CASCADE).
		tag, err := tx.q.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, id)
		if err := affectedOne(tag, err); err != nil {
			return err
		}
		_, err = tx.q.Exec(ctx,
			`INSERT INTO deleted_accounts (account_id, deleted_at) VALUES ($1, $2)
			 ON CONFLICT (account_id) DO UPDATE SET deleted_at = excluded.deleted_at`,
			id, now())
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete account: %w", err)
	}
	return nil
}

// Credential implements store.Store.
func (c *conn) Credential(ctx context.Context, kind store.CredentialKind, subject string) (store.Credential, error) {
	cred := store.Credential{Kind: kind, Subject: subject}
	err := c.q.QueryRow(ctx,
		`SELECT account_id, secret, created_at FROM credentials WHERE kind = $1 AND subject = $2`,
		string(kind), subject,
	).Scan(&cred.AccountID, &cred.Secret, &cred.CreatedAt)
	if err != nil {
		return store.Credential{}, fmt.Errorf("postgres: get credential: %w", mapErr(err))
	}
	cred.CreatedAt = cred.CreatedAt.UTC()
	return cred, nil
}

// CredentialAccount implements store.Store.
func (c *conn) CredentialAccount(ctx context.Context, kind store.CredentialKind, subject string) (store.Credential, store.Account, error) {
	cred := store.Credential{Kind: kind, Subject: subject}
	a, err := scanAccount(c.q.QueryRow(ctx,
		`SELECT a.id, a.username, a.display_name, a.created_at, a.updated_at, a.disabled_at, a.session_epoch,
			c.secret, c.created_at
		 FROM credentials c JOIN accounts a ON a.id = c.account_id
		 WHERE c.kind = $1 AND c.subject = $2`,
		string(kind), subject), &cred.Secret, &cred.CreatedAt)
	if err != nil {
		return store.Credential{}, store.Account{}, fmt.Errorf("postgres: get credential and account: %w", err)
	}
	cred.AccountID = a.ID
	cred.CreatedAt = cred.CreatedAt.UTC()
	return cred, a, nil
}

// Credentials implements store.Store. It returns ErrNotFound when the
// account does not exist and an empty slice when it has no credential.
func (c *conn) Credentials(ctx context.Context, accountID string) ([]store.Credential, error) {
	// The left join tells a missing account (no row) from an account
	// without credentials (one row of NULLs) in one query.
	rows, err := c.q.Query(ctx,
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
func (c *conn) LinkCredential(ctx context.Context, cred store.Credential) error {
	_, err := c.q.Exec(ctx,
		`INSERT INTO credentials (kind, subject, account_id, secret, created_at) VALUES ($1, $2, $3, $4, $5)`,
		string(cred.Kind), cred.Subject, cred.AccountID, cred.Secret, now())
	if err != nil {
		return fmt.Errorf("postgres: link credential: %w", mapErr(err))
	}
	return nil
}

// UnlinkCredential implements store.Store.
func (c *conn) UnlinkCredential(ctx context.Context, kind store.CredentialKind, subject string) error {
	tag, err := c.q.Exec(ctx,
		`DELETE FROM credentials WHERE kind = $1 AND subject = $2`, string(kind), subject)
	if err := affectedOne(tag, err); err != nil {
		return fmt.Errorf("postgres: unlink credential: %w", err)
	}
	return nil
}

// RevokeSessions implements store.Store.
func (c *conn) RevokeSessions(ctx context.Context, accountID string) (int64, error) {
	var epoch int64
	err := c.q.QueryRow(ctx,
		`UPDATE accounts SET session_epoch = session_epoch + 1, updated_at = $1 WHERE id = $2 RETURNING session_epoch`,
		now(), accountID).Scan(&epoch)
	if err != nil {
		return 0, fmt.Errorf("postgres: revoke sessions: %w", mapErr(err))
	}
	return epoch, nil
}

// SessionState implements store.Store.
func (c *conn) SessionState(ctx context.Context, accountID string) (store.SessionState, error) {
	st := store.SessionState{AccountID: accountID}
	err := c.q.QueryRow(ctx,
		`SELECT session_epoch, disabled_at IS NOT NULL FROM accounts WHERE id = $1`, accountID,
	).Scan(&st.Epoch, &st.Disabled)
	if err == nil {
		return st, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.SessionState{}, fmt.Errorf("postgres: session state: %w", mapErr(err))
	}
	var one int
	err = c.q.QueryRow(ctx, `SELECT 1 FROM deleted_accounts WHERE account_id = $1`, accountID).Scan(&one)
	if err != nil {
		return store.SessionState{}, fmt.Errorf("postgres: session state: %w", mapErr(err))
	}
	st.Deleted = true
	return st, nil
}

// RestrictedSessions implements store.Store.
func (c *conn) RestrictedSessions(ctx context.Context) ([]store.SessionState, error) {
	rows, err := c.q.Query(ctx,
		`SELECT id, session_epoch, disabled_at IS NOT NULL, false FROM accounts
		 WHERE session_epoch > 0 OR disabled_at IS NOT NULL
		 UNION ALL
		 SELECT account_id, 0, false, true FROM deleted_accounts`)
	if err != nil {
		return nil, fmt.Errorf("postgres: restricted sessions: %w", mapErr(err))
	}
	defer rows.Close()
	states := []store.SessionState{}
	for rows.Next() {
		var st store.SessionState
		if err := rows.Scan(&st.AccountID, &st.Epoch, &st.Disabled, &st.Deleted); err != nil {
			return nil, fmt.Errorf("postgres: restricted sessions: %w", mapErr(err))
		}
		states = append(states, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: restricted sessions: %w", mapErr(err))
	}
	return states, nil
}

// ConsumeRefresh implements store.Store.
func (c *conn) ConsumeRefresh(ctx context.Context, u store.RefreshUse) error {
	if u.Family == "" || u.AccountID == "" || u.Generation < 0 {
		return errors.New("postgres: consume refresh: family, account and a generation >= 0 are required")
	}
	now := now()
	exp := store.Timestamp(u.ExpiresAt)
	var reused bool
	err := c.inTx(ctx, func(tx *conn) error {
		var (
			tag pgconn.CommandTag
			err error
		)
		if u.Generation == 0 {
			tag, err = tx.q.Exec(ctx,
				`INSERT INTO refresh_families (id, account_id, generation, created_at, used_at, expires_at)
				 VALUES ($1, $2, 1, $3, $3, $4) ON CONFLICT (id) DO NOTHING`,
				u.Family, u.AccountID, now, exp)
		} else {
			tag, err = tx.q.Exec(ctx,
				`UPDATE refresh_families SET generation = generation + 1, used_at = $1, expires_at = $2
				 WHERE id = $3 AND account_id = $4 AND generation = $5 AND revoked_at IS NULL`,
				now, exp, u.Family, u.AccountID, u.Generation)
		}
		if err != nil {
			return mapErr(err) // ErrNotFound for an account that does not exist
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		var (
			gen     int64
			account string
			revoked *time.Time
		)
		// FOR UPDATE: a concurrent use of the same token waits here and
		// then sees the generation this one wrote.
		err = tx.q.QueryRow(ctx,
			`SELECT generation, account_id, revoked_at FROM refresh_families WHERE id = $1 FOR UPDATE`, u.Family,
		).Scan(&gen, &account, &revoked)
		switch {
		case err != nil:
			return mapErr(err)
		case account != u.AccountID:
			return store.ErrNotFound
		case revoked != nil:
			return store.ErrRevoked
		case gen <= u.Generation:
			return store.ErrNotFound
		}
		reused = true
		_, err = tx.q.Exec(ctx, `UPDATE refresh_families SET revoked_at = $1 WHERE id = $2`, now, u.Family)
		return mapErr(err)
	})
	if err == nil && reused {
		err = store.ErrRefreshReused
	}
	if err != nil {
		return fmt.Errorf("postgres: consume refresh: %w", err)
	}
	return nil
}

// RevokedFamilies implements store.Store.
func (c *conn) RevokedFamilies(ctx context.Context, since time.Time) ([]store.RevokedFamily, error) {
	rows, err := c.q.Query(ctx,
		`SELECT id, account_id, revoked_at FROM refresh_families WHERE revoked_at >= $1`, store.Timestamp(since))
	if err != nil {
		return nil, fmt.Errorf("postgres: revoked families: %w", mapErr(err))
	}
	defer rows.Close()
	fams := []store.RevokedFamily{}
	for rows.Next() {
		var f store.RevokedFamily
		if err := rows.Scan(&f.Family, &f.AccountID, &f.RevokedAt); err != nil {
			return nil, fmt.Errorf("postgres: revoked families: %w", mapErr(err))
		}
		f.RevokedAt = f.RevokedAt.UTC()
		fams = append(fams, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: revoked families: %w", mapErr(err))
	}
	return fams, nil
}

// PruneRefreshFamilies implements store.Store.
func (c *conn) PruneRefreshFamilies(ctx context.Context, before time.Time) (int64, error) {
	tag, err := c.q.Exec(ctx, `DELETE FROM refresh_families WHERE expires_at < $1`, store.Timestamp(before))
	if err != nil {
		return 0, fmt.Errorf("postgres: prune refresh families: %w", mapErr(err))
	}
	return tag.RowsAffected(), nil
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
