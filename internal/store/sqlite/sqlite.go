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
	conn
	// writeDB holds the one connection that writes.
	writeDB *sql.DB
	// readDB holds query-only connections.
	readDB *sql.DB
	// lookupDB holds the query-only connections of the login lookup
	// workers, one each.
	lookupDB *sql.DB
}

var (
	_ store.Store = (*Store)(nil)
	_ store.Tx    = (*conn)(nil)
)

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// conn runs the store's statements: on the two pools for a Store, on one
// transaction for a Tx.
type conn struct {
	read, write querier
	// begin starts a write transaction; nil inside one.
	begin func(ctx context.Context) (*sql.Tx, error)
	// lookups runs the login lookup on connections of their own; nil
	// inside a transaction.
	lookups *lookupWorkers
	// usersPending, inbox and userTopics are usersPendingQuery, inboxQuery
	// and userTopicsQuery prepared on the read pool (every login runs the
	// first, and the others when it finds something); nil inside a
	// transaction. Parsing and planning an SQLite statement costs several
	// times what running one of these on its index does.
	usersPending, inbox, userTopics *sql.Stmt
}

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
	var stmts [3]*sql.Stmt
	for i, q := range []string{usersPendingQuery, inboxQuery, userTopicsQuery} {
		if stmts[i], err = read.PrepareContext(ctx, q); err != nil {
			return nil, errors.Join(fmt.Errorf("sqlite: open: prepare %q: %w", q, err), read.Close(), write.Close())
		}
	}
	s := &Store{writeDB: write, readDB: read}
	s.conn = conn{
		read: read, write: write, usersPending: stmts[0], inbox: stmts[1], userTopics: stmts[2],
		begin: func(ctx context.Context) (*sql.Tx, error) { return write.BeginTx(ctx, nil) },
	}
	if s.lookupDB, s.lookups, err = openLookups(ctx, abs, min(runtime.GOMAXPROCS(0), 8)); err != nil {
		return nil, errors.Join(err, s.closeStmts(), read.Close(), write.Close())
	}
	return s, nil
}

// openLookups opens n connections for the login lookup and starts a
// worker on each.
func openLookups(ctx context.Context, abs string, n int) (*sql.DB, *lookupWorkers, error) {
	db, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: open: %w", err)
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	runners := make([]lookupRunner, 0, n)
	for range n {
		r, err := newConnLookup(ctx, db)
		if err != nil {
			for _, r := range runners {
				err = errors.Join(err, r.close())
			}
			return nil, nil, errors.Join(err, db.Close())
		}
		runners = append(runners, r)
	}
	return db, startLookupWorkers(runners), nil
}

// closeStmts closes the statements prepared on the read pool.
func (s *Store) closeStmts() error {
	return errors.Join(s.usersPending.Close(), s.inbox.Close(), s.userTopics.Close())
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

// InTx implements store.Store. The transaction holds the write connection
// (BEGIN IMMEDIATE), so transactions and single writes queue behind each
// other in Go.
func (s *Store) InTx(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.inTx(ctx, func(c *conn) error { return fn(c) })
}

// inTx runs fn on a transaction: c itself when c is one already.
func (c *conn) inTx(ctx context.Context, fn func(c *conn) error) error {
	if c.begin == nil {
		return fn(c)
	}
	tx, err := c.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", mapErr(err))
	}
	defer tx.Rollback() //nolint:errcheck // No-op after Commit.
	if err := fn(&conn{read: tx, write: tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", mapErr(err))
	}
	return nil
}

// CreateAccount implements store.Store.
func (c *conn) CreateAccount(ctx context.Context, a store.Account, cred store.Credential) (store.Account, error) {
	if cred.AccountID != "" && cred.AccountID != a.ID {
		return store.Account{}, fmt.Errorf("sqlite: create account: credential account id %q differs from account id %q", cred.AccountID, a.ID)
	}
	now := now()
	a.CreatedAt, a.UpdatedAt = now, now
	a.DisabledAt = store.Timestamp(a.DisabledAt)
	a.SessionEpoch = 0
	err := c.inTx(ctx, func(tx *conn) error {
		if _, err := tx.write.ExecContext(ctx,
			`INSERT INTO accounts (id, username, display_name, created_at, updated_at, disabled_at)
			 VALUES (?, ?, ?, ?, ?, ?)`,
			a.ID, a.Username, a.DisplayName, formatTime(now), formatTime(now), nullTime(a.DisabledAt),
		); err != nil {
			return mapErr(err)
		}
		if _, err := tx.write.ExecContext(ctx,
			`INSERT INTO credentials (kind, subject, account_id, secret, created_at) VALUES (?, ?, ?, ?, ?)`,
			string(cred.Kind), cred.Subject, a.ID, cred.Secret, formatTime(now),
		); err != nil {
			return mapErr(err)
		}
		return nil
	})
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: create account: %w", err)
	}
	return a, nil
}

const accountColumns = `id, username, display_name, created_at, updated_at, disabled_at, session_epoch`

const selectAccount = `SELECT ` + accountColumns + ` FROM accounts`

// Account implements store.Store.
func (c *conn) Account(ctx context.Context, id string) (store.Account, error) {
	ctx, err := pointRead(ctx)
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: get account: %w", err)
	}
	a, err := scanAccount(c.read.QueryRowContext(ctx, selectAccount+` WHERE id = ?`, id))
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: get account: %w", err)
	}
	return a, nil
}

// AccountByUsername implements store.Store.
func (c *conn) AccountByUsername(ctx context.Context, username string) (store.Account, error) {
	a, err := scanAccount(c.read.QueryRowContext(ctx, selectAccount+` WHERE username = ?`, username))
	if err != nil {
		return store.Account{}, fmt.Errorf("sqlite: get account by username: %w", err)
	}
	return a, nil
}

// ListAccounts implements store.Store.
func (c *conn) ListAccounts(ctx context.Context, p store.Page) ([]store.Account, string, error) {
	limit, err := p.Size()
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list accounts: %w", err)
	}
	after := ""
	if p.Cursor != "" {
		keys, err := store.DecodeCursor(p.Cursor, 1)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list accounts: %w", err)
		}
		after = keys[0]
	}
	rows, err := c.read.QueryContext(ctx, selectAccount+` WHERE id > ? ORDER BY id LIMIT ?`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list accounts: %w", mapErr(err))
	}
	defer rows.Close()
	accounts := []store.Account{}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list accounts: %w", err)
		}
		accounts = append(accounts, a)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list accounts: %w", mapErr(err))
	}
	next := ""
	if len(accounts) > limit {
		accounts = accounts[:limit]
		next = store.EncodeCursor(accounts[limit-1].ID)
	}
	return accounts, next, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanAccount(row scanner, extra ...any) (store.Account, error) {
	var (
		a                      store.Account
		created, updated       string
		disabled               sql.NullString
		errCreated, errUpdated error
		errDisabled            error
	)
	dest := append([]any{&a.ID, &a.Username, &a.DisplayName, &created, &updated, &disabled, &a.SessionEpoch}, extra...)
	if err := row.Scan(dest...); err != nil {
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

// SetUsername implements store.Store.
func (c *conn) SetUsername(ctx context.Context, id, username string) error {
	res, err := c.write.ExecContext(ctx,
		`UPDATE accounts SET username = ?, updated_at = ? WHERE id = ?`, username, formatTime(now()), id)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("sqlite: set username: %w", err)
	}
	return nil
}

// SetAccountDisabled implements store.Store.
func (c *conn) SetAccountDisabled(ctx context.Context, id string, at time.Time) error {
	res, err := c.write.ExecContext(ctx,
		`UPDATE accounts SET disabled_at = ?, updated_at = ? WHERE id = ?`,
		nullTime(store.Timestamp(at)), formatTime(now()), id)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("sqlite: set account disabled: %w", err)
	}
	return nil
}

// DeleteAccount implements store.Store.
func (c *conn) DeleteAccount(ctx context.Context, id string) error {
	err := c.inTx(ctx, func(tx *conn) error {
		// Credentials and refresh families go with the account (ON DELETE
		// CASCADE).
		res, err := tx.write.ExecContext(ctx, `DELETE FROM accounts WHERE id = ?`, id)
		if err := affectedOne(res, err); err != nil {
			return err
		}
		_, err = tx.write.ExecContext(ctx,
			`INSERT INTO deleted_accounts (account_id, deleted_at) VALUES (?, ?)
			 ON CONFLICT (account_id) DO UPDATE SET deleted_at = excluded.deleted_at`,
			id, formatTime(now()))
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete account: %w", err)
	}
	return nil
}

// Credential implements store.Store.
func (c *conn) Credential(ctx context.Context, kind store.CredentialKind, subject string) (store.Credential, error) {
	cred := store.Credential{Kind: kind, Subject: subject}
	var created string
	err := c.read.QueryRowContext(ctx,
		`SELECT account_id, secret, created_at FROM credentials WHERE kind = ? AND subject = ?`,
		string(kind), subject,
	).Scan(&cred.AccountID, &cred.Secret, &created)
	if err != nil {
		return store.Credential{}, fmt.Errorf("sqlite: get credential: %w", mapErr(err))
	}
	if cred.CreatedAt, err = parseTime(created); err != nil {
		return store.Credential{}, fmt.Errorf("sqlite: get credential: %w", err)
	}
	return cred, nil
}

const credentialAccountQuery = `SELECT a.id, a.username, a.display_name, a.created_at, a.updated_at, a.disabled_at, a.session_epoch,
	c.secret, c.created_at
	FROM credentials c JOIN accounts a ON a.id = c.account_id
	WHERE c.kind = ? AND c.subject = ?`

// CredentialAccount implements store.Store.
func (c *conn) CredentialAccount(ctx context.Context, kind store.CredentialKind, subject string) (store.Credential, store.Account, error) {
	query, err := pointRead(ctx)
	if err != nil {
		return store.Credential{}, store.Account{}, fmt.Errorf("sqlite: get credential and account: %w", err)
	}
	if c.lookups != nil {
		return c.lookups.do(ctx, query, kind, subject)
	}
	return c.credentialAccountOn(query, kind, subject)
}

// credentialAccountOn runs the login lookup on the caller's goroutine,
// inside a transaction.
func (c *conn) credentialAccountOn(ctx context.Context, kind store.CredentialKind, subject string) (store.Credential, store.Account, error) {
	row := c.read.QueryRowContext(ctx, credentialAccountQuery, string(kind), subject)
	cred := store.Credential{Kind: kind, Subject: subject}
	var created string
	a, err := scanAccount(row, &cred.Secret, &created)
	if err != nil {
		return store.Credential{}, store.Account{}, fmt.Errorf("sqlite: get credential and account: %w", err)
	}
	cred.AccountID = a.ID
	if cred.CreatedAt, err = parseTime(created); err != nil {
		return store.Credential{}, store.Account{}, fmt.Errorf("sqlite: get credential and account: %w", err)
	}
	return cred, a, nil
}

// pointRead returns the context for a read of one row, or of one bounded
// range, by key: ctx without its cancellation, or ctx's error when it is
// already done. Such a read takes microseconds and is not worth interrupting, while a cancellable
// context costs the driver and database/sql a watcher goroutine each per
// query. The read still waits, without ctx, for a free connection of the
// pool, whose queries are all short.
func pointRead(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

// Credentials implements store.Store. It returns ErrNotFound when the
// account does not exist and an empty slice when it has no credential.
func (c *conn) Credentials(ctx context.Context, accountID string) ([]store.Credential, error) {
	// The left join tells a missing account (no row) from an account
	// without credentials (one row of NULLs) in one query.
	rows, err := c.read.QueryContext(ctx,
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
func (c *conn) LinkCredential(ctx context.Context, cred store.Credential) error {
	_, err := c.write.ExecContext(ctx,
		`INSERT INTO credentials (kind, subject, account_id, secret, created_at) VALUES (?, ?, ?, ?, ?)`,
		string(cred.Kind), cred.Subject, cred.AccountID, cred.Secret, formatTime(now()))
	if err != nil {
		return fmt.Errorf("sqlite: link credential: %w", mapErr(err))
	}
	return nil
}

// UnlinkCredential implements store.Store.
func (c *conn) UnlinkCredential(ctx context.Context, kind store.CredentialKind, subject string) error {
	res, err := c.write.ExecContext(ctx,
		`DELETE FROM credentials WHERE kind = ? AND subject = ?`, string(kind), subject)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("sqlite: unlink credential: %w", err)
	}
	return nil
}

// RevokeSessions implements store.Store.
func (c *conn) RevokeSessions(ctx context.Context, accountID string) (int64, error) {
	var epoch int64
	err := c.write.QueryRowContext(ctx,
		`UPDATE accounts SET session_epoch = session_epoch + 1, updated_at = ? WHERE id = ? RETURNING session_epoch`,
		formatTime(now()), accountID).Scan(&epoch)
	if err != nil {
		return 0, fmt.Errorf("sqlite: revoke sessions: %w", mapErr(err))
	}
	return epoch, nil
}

// SessionState implements store.Store.
func (c *conn) SessionState(ctx context.Context, accountID string) (store.SessionState, error) {
	st := store.SessionState{AccountID: accountID}
	var disabled sql.NullString
	err := c.read.QueryRowContext(ctx,
		`SELECT session_epoch, disabled_at FROM accounts WHERE id = ?`, accountID).Scan(&st.Epoch, &disabled)
	if err == nil {
		st.Disabled = disabled.Valid
		return st, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.SessionState{}, fmt.Errorf("sqlite: session state: %w", mapErr(err))
	}
	var one int
	err = c.read.QueryRowContext(ctx, `SELECT 1 FROM deleted_accounts WHERE account_id = ?`, accountID).Scan(&one)
	if err != nil {
		return store.SessionState{}, fmt.Errorf("sqlite: session state: %w", mapErr(err))
	}
	st.Deleted = true
	return st, nil
}

// RestrictedSessions implements store.Store.
func (c *conn) RestrictedSessions(ctx context.Context) ([]store.SessionState, error) {
	rows, err := c.read.QueryContext(ctx,
		`SELECT id, session_epoch, disabled_at IS NOT NULL, 0 FROM accounts
		 WHERE session_epoch > 0 OR disabled_at IS NOT NULL
		 UNION ALL
		 SELECT account_id, 0, 0, 1 FROM deleted_accounts`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: restricted sessions: %w", mapErr(err))
	}
	defer rows.Close()
	states := []store.SessionState{}
	for rows.Next() {
		var st store.SessionState
		if err := rows.Scan(&st.AccountID, &st.Epoch, &st.Disabled, &st.Deleted); err != nil {
			return nil, fmt.Errorf("sqlite: restricted sessions: %w", mapErr(err))
		}
		states = append(states, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: restricted sessions: %w", mapErr(err))
	}
	return states, nil
}

// ConsumeRefresh implements store.Store.
func (c *conn) ConsumeRefresh(ctx context.Context, u store.RefreshUse) error {
	if u.Family == "" || u.AccountID == "" || u.Generation < 0 {
		return fmt.Errorf("sqlite: consume refresh: family, account and a generation >= 0 are required")
	}
	now := formatTime(now())
	exp := formatTime(store.Timestamp(u.ExpiresAt))
	var reused bool
	err := c.inTx(ctx, func(tx *conn) error {
		var res sql.Result
		var err error
		if u.Generation == 0 {
			res, err = tx.write.ExecContext(ctx,
				`INSERT INTO refresh_families (id, account_id, generation, created_at, used_at, expires_at)
				 VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
				u.Family, u.AccountID, now, now, exp)
		} else {
			res, err = tx.write.ExecContext(ctx,
				`UPDATE refresh_families SET generation = generation + 1, used_at = ?, expires_at = ?
				 WHERE id = ? AND account_id = ? AND generation = ? AND revoked_at IS NULL`,
				now, exp, u.Family, u.AccountID, u.Generation)
		}
		if err != nil {
			return mapErr(err) // ErrNotFound for an account that does not exist
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err // nil: consumed
		}
		var (
			gen     int64
			account string
			revoked sql.NullString
		)
		err = tx.write.QueryRowContext(ctx,
			`SELECT generation, account_id, revoked_at FROM refresh_families WHERE id = ?`, u.Family,
		).Scan(&gen, &account, &revoked)
		switch {
		case err != nil:
			return mapErr(err)
		case account != u.AccountID:
			return store.ErrNotFound
		case revoked.Valid:
			return store.ErrRevoked
		case gen <= u.Generation:
			return store.ErrNotFound
		}
		reused = true
		_, err = tx.write.ExecContext(ctx, `UPDATE refresh_families SET revoked_at = ? WHERE id = ?`, now, u.Family)
		return mapErr(err)
	})
	if err == nil && reused {
		err = store.ErrRefreshReused
	}
	if err != nil {
		return fmt.Errorf("sqlite: consume refresh: %w", err)
	}
	return nil
}

// RevokedFamilies implements store.Store.
func (c *conn) RevokedFamilies(ctx context.Context, since time.Time) ([]store.RevokedFamily, error) {
	rows, err := c.read.QueryContext(ctx,
		`SELECT id, account_id, revoked_at FROM refresh_families WHERE revoked_at >= ?`,
		formatTime(store.Timestamp(since)))
	if err != nil {
		return nil, fmt.Errorf("sqlite: revoked families: %w", mapErr(err))
	}
	defer rows.Close()
	fams := []store.RevokedFamily{}
	for rows.Next() {
		var (
			f       store.RevokedFamily
			revoked string
		)
		if err := rows.Scan(&f.Family, &f.AccountID, &revoked); err != nil {
			return nil, fmt.Errorf("sqlite: revoked families: %w", mapErr(err))
		}
		if f.RevokedAt, err = parseTime(revoked); err != nil {
			return nil, fmt.Errorf("sqlite: revoked families: %w", err)
		}
		fams = append(fams, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: revoked families: %w", mapErr(err))
	}
	return fams, nil
}

// PruneRefreshFamilies implements store.Store.
func (c *conn) PruneRefreshFamilies(ctx context.Context, before time.Time) (int64, error) {
	res, err := c.write.ExecContext(ctx, `DELETE FROM refresh_families WHERE expires_at < ?`,
		formatTime(store.Timestamp(before)))
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune refresh families: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune refresh families: %w", err)
	}
	return n, nil
}

// Ping implements store.Store. It checks both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.writeDB.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := s.readDB.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close implements store.Store. It waits for queries in progress to end.
// Calling Close again returns nil.
func (s *Store) Close() error {
	if err := errors.Join(s.lookups.stop(), s.lookupDB.Close(), s.closeStmts(), s.readDB.Close(), s.writeDB.Close()); err != nil {
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

func formatTime(t time.Time) string {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Format(timeLayout)
	}
	// What t.Format(timeLayout) writes, without its layout interpreter
	// (every login formats the time of its inbox read).
	hour, minute, sec := t.Clock()
	var b [len(timeLayout)]byte
	put := func(i, n, v int) {
		for j := i + n - 1; j >= i; j-- {
			b[j] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, 4, year)
	b[4] = '-'
	put(5, 2, int(month))
	b[7] = '-'
	put(8, 2, day)
	b[10] = 'T'
	put(11, 2, hour)
	b[13] = ':'
	put(14, 2, minute)
	b[16] = ':'
	put(17, 2, sec)
	b[19] = '.'
	put(20, 3, t.Nanosecond()/1e6)
	b[23] = 'Z'
	return string(b[:])
}

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}

// parseTime parses a timestamp in timeLayout.
func parseTime(s string) (time.Time, error) {
	if t, ok := parseTimeFast(s); ok {
		return t, nil
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse timestamp %q: %w", s, err)
	}
	return t, nil
}

// parseTimeFast parses s in timeLayout without time.Parse's generality (a
// login reads three timestamps). It reports false for anything but a
// well-formed, valid timestamp; time.Parse then says what is wrong.
func parseTimeFast(s string) (time.Time, bool) {
	// 2006-01-02T15:04:05.000Z
	if len(s) != len(timeLayout) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
		s[16] != ':' || s[19] != '.' || s[23] != 'Z' {
		return time.Time{}, false
	}
	ok := true
	num := func(i, n int) int {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				ok = false
			}
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec, ms := num(11, 2), num(14, 2), num(17, 2), num(20, 3)
	if !ok || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, ms*int(time.Millisecond), time.UTC)
	if t.Day() != day { // past the month's end
		return time.Time{}, false
	}
	return t, true
}
