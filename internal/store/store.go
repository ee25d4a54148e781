// Package store owns durable data: accounts, their credentials, the state
// that makes sessions revocable, the users' notification inboxes and the
// notification topics with their subscriptions and retained items. It
// declares the records, one small interface per domain (Accounts,
// Credentials, Sessions, Inbox, Topics) and Store, which joins them with
// transactions; the implementations live in subpackages named after their
// engine (store/sqlite for single-node mode, store/postgres for cluster
// mode) and both pass the one conformance suite in store/storetest.
//
// Consumers declare the subset they use (auth declares its own interfaces
// over Accounts and Sessions), so a package never depends on more of the
// store than it needs.
//
// # Transactions
//
// Store.InTx runs a function in one transaction and hands it a Tx: the same
// methods as Store, bound to that transaction. The function must use only
// the Tx it is given: on SQLite the transaction holds the one write
// connection, so a call on the Store itself from inside the function waits
// for the transaction to end, which never happens.
//
// # Pagination
//
// Every list that can grow without bound takes a Page (an opaque cursor
// and a limit) and returns the items and the cursor of the next page, ""
// after the last page. A cursor is only meaningful to the method that
// returned it; clients pass it back unchanged. A limit of 0 means
// DefaultLimit, and limits above MaxLimit are cut to MaxLimit. A cursor the
// store cannot read fails with ErrBadCursor. EncodeCursor and DecodeCursor,
// and EncodeSeqCursor and DecodeSeqCursor for lists in the order of a
// sequence number, are the helpers the implementations share.
package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Errors returned by every Store implementation. Check them with errors.Is.
var (
	// ErrNotFound means the record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists means a unique key (account id, username or
	// credential) is taken.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrBadCursor means a Page's cursor was not returned by the method
	// it was passed to.
	ErrBadCursor = errors.New("store: bad page cursor")
	// ErrRefreshReused means a refresh token was presented a second time;
	// ConsumeRefresh has revoked its family.
	ErrRefreshReused = errors.New("store: refresh token already used")
	// ErrRevoked means the refresh token's family was revoked earlier.
	ErrRevoked = errors.New("store: refresh token family revoked")
)

// CredentialKind names a way to authenticate.
type CredentialKind string

// The credential kinds a Store accepts.
const (
	CredentialDevice CredentialKind = "device"
	CredentialCustom CredentialKind = "custom"
	CredentialEmail  CredentialKind = "email"
)

// Account is a player's account.
type Account struct {
	// ID is a UUID chosen by the caller (UUIDv7 by convention).
	ID string
	// Username is unique across accounts, compared case-sensitively.
	Username string
	// DisplayName is free text; empty when unset.
	DisplayName string
	// CreatedAt and UpdatedAt are set by the store (UTC, millisecond
	// precision); values passed in are ignored.
	CreatedAt time.Time
	UpdatedAt time.Time
	// DisabledAt is the zero time for an enabled account.
	DisabledAt time.Time
	// SessionEpoch counts RevokeSessions calls: tokens issued under an
	// older epoch are revoked. It starts at 0 and is set by the store only.
	SessionEpoch int64
}

// Credential links an identity to an account. (Kind, Subject) is unique.
type Credential struct {
	Kind CredentialKind
	// Subject is the device id, custom id or normalised (lower-case) email.
	Subject   string
	AccountID string
	// Secret is the password hash (PHC string) for email credentials and
	// empty for the others. The store never interprets it.
	Secret string
	// CreatedAt is set by the store.
	CreatedAt time.Time
}

// SessionState is what decides whether an account's existing sessions
// still hold: its session epoch, and whether it is disabled or deleted.
type SessionState struct {
	AccountID string
	// Epoch is the account's SessionEpoch (0 for a deleted account).
	Epoch    int64
	Disabled bool
	// Deleted is true for an account DeleteAccount removed.
	Deleted bool
}

// Restricted reports whether the state differs from a fresh account's.
func (s SessionState) Restricted() bool { return s.Epoch > 0 || s.Disabled || s.Deleted }

// RefreshUse is one presentation of a refresh token to ConsumeRefresh.
type RefreshUse struct {
	// Family names the chain of refresh tokens one login started.
	Family string
	// AccountID owns the family.
	AccountID string
	// Generation is the presented token's place in the chain, 0 for the
	// token the login issued.
	Generation int64
	// ExpiresAt is when the next token of the chain expires; the family
	// is kept at least until then.
	ExpiresAt time.Time
}

// RevokedFamily is a refresh token family revoked by reuse detection.
type RevokedFamily struct {
	Family    string
	AccountID string
	RevokedAt time.Time
}

// Page asks for one page of a list; see the package documentation.
type Page struct {
	// Cursor is "" for the first page, otherwise the cursor the previous
	// page returned.
	Cursor string
	// Limit is the most items to return: DefaultLimit when 0, at most
	// MaxLimit.
	Limit int
}

// Page sizes.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Size returns the page size p asks for, or an error for a negative limit.
func (p Page) Size() (int, error) {
	switch {
	case p.Limit < 0:
		return 0, fmt.Errorf("store: page limit %d is negative", p.Limit)
	case p.Limit == 0:
		return DefaultLimit, nil
	case p.Limit > MaxLimit:
		return MaxLimit, nil
	}
	return p.Limit, nil
}

// EncodeCursor returns the opaque cursor that holds keys (the sort key of
// the last item of a page).
func EncodeCursor(keys ...string) string {
	b, _ := json.Marshal(keys) // a []string always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor returns the n keys of a cursor made by EncodeCursor, or an
// error wrapping ErrBadCursor.
func DecodeCursor(cursor string, n int) ([]string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	var keys []string
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	if len(keys) != n {
		return nil, fmt.Errorf("%w: %d keys, want %d", ErrBadCursor, len(keys), n)
	}
	return keys, nil
}

// EncodeSeqCursor returns the cursor of a list ordered by a sequence
// number, after seq.
func EncodeSeqCursor(seq int64) string { return EncodeCursor(strconv.FormatInt(seq, 10)) }

// DecodeSeqCursor returns the sequence number of a cursor made by
// EncodeSeqCursor, 0 for "", or an error wrapping ErrBadCursor.
func DecodeSeqCursor(cursor string) (int64, error) {
	if cursor == "" {
		return 0, nil
	}
	keys, err := DecodeCursor(cursor, 1)
	if err != nil {
		return 0, err
	}
	seq, err := strconv.ParseInt(keys[0], 10, 64)
	if err != nil || seq < 0 {
		return 0, fmt.Errorf("%w: sequence number %q", ErrBadCursor, keys[0])
	}
	return seq, nil
}

// Accounts holds accounts.
type Accounts interface {
	// CreateAccount inserts an account together with its first credential,
	// atomically. It returns ErrAlreadyExists (and inserts nothing) when the
	// account id, the username or the credential is taken.
	CreateAccount(ctx context.Context, a Account, c Credential) (Account, error)
	// Account returns the account with that id, or ErrNotFound.
	Account(ctx context.Context, id string) (Account, error)
	// AccountByUsername returns the account with that username, or ErrNotFound.
	AccountByUsername(ctx context.Context, username string) (Account, error)
	// ListAccounts returns a page of accounts ordered by id.
	ListAccounts(ctx context.Context, p Page) (accounts []Account, next string, err error)
	// SetUsername renames an account: ErrNotFound when it does not exist,
	// ErrAlreadyExists when the username is taken.
	SetUsername(ctx context.Context, id, username string) error
	// SetAccountDisabled disables (at != zero) or re-enables an account.
	SetAccountDisabled(ctx context.Context, id string, at time.Time) error
	// DeleteAccount removes an account with its credentials and refresh
	// token families, and remembers that it was deleted (SessionState
	// reports it Deleted). ErrNotFound when it does not exist.
	DeleteAccount(ctx context.Context, id string) error
}

// Credentials holds the credentials that authenticate accounts.
type Credentials interface {
	// Credential returns the credential (kind, subject), or ErrNotFound.
	Credential(ctx context.Context, kind CredentialKind, subject string) (Credential, error)
	// CredentialAccount returns the credential (kind, subject) and its
	// account in one query (the lookup behind every login), or
	// ErrNotFound.
	CredentialAccount(ctx context.Context, kind CredentialKind, subject string) (Credential, Account, error)
	// Credentials lists an account's credentials ordered by kind, subject;
	// ErrNotFound when the account does not exist.
	Credentials(ctx context.Context, accountID string) ([]Credential, error)
	// LinkCredential adds a credential to an existing account: ErrNotFound
	// when the account does not exist, ErrAlreadyExists when the credential
	// is taken (by any account).
	LinkCredential(ctx context.Context, c Credential) error
	// UnlinkCredential removes a credential, or returns ErrNotFound.
	UnlinkCredential(ctx context.Context, kind CredentialKind, subject string) error
}

// Sessions holds what makes sessions and refresh tokens revocable.
type Sessions interface {
	// RevokeSessions increments the account's SessionEpoch and returns the
	// new epoch; ErrNotFound when the account does not exist.
	RevokeSessions(ctx context.Context, accountID string) (int64, error)
	// SessionState returns one account's state; ErrNotFound when the
	// account neither exists nor was deleted.
	SessionState(ctx context.Context, accountID string) (SessionState, error)
	// RestrictedSessions lists the state of every account whose sessions
	// are restricted (SessionState.Restricted), in no particular order.
	RestrictedSessions(ctx context.Context) ([]SessionState, error)
	// ConsumeRefresh records that the refresh token u.Generation of
	// u.Family was used and makes u.Generation+1 the only usable one.
	// The first use of a family creates it. A generation already used
	// revokes the family and returns ErrRefreshReused; a revoked family
	// returns ErrRevoked; an unknown family past generation 0, or one of
	// another account, returns ErrNotFound.
	ConsumeRefresh(ctx context.Context, u RefreshUse) error
	// RevokedFamilies lists the families revoked at or after since.
	RevokedFamilies(ctx context.Context, since time.Time) ([]RevokedFamily, error)
	// PruneRefreshFamilies deletes families whose last token expired
	// before t and returns how many it deleted.
	PruneRefreshFamilies(ctx context.Context, before time.Time) (int64, error)
}

// Tx is a Store bound to one transaction (see Store.InTx).
type Tx interface {
	Accounts
	Credentials
	Sessions
	Inbox
	Topics
	LoginPending
	RoomResults
}

// Store is the durable state of a taisen deployment. Implementations are
// safe for concurrent use.
type Store interface {
	Accounts
	Credentials
	Sessions
	Inbox
	Topics
	LoginPending
	RoomResults
	// InTx runs fn in one transaction: committed when fn returns nil,
	// rolled back when it returns an error (which InTx returns) or panics.
	// fn must use only tx (see the package documentation).
	InTx(ctx context.Context, fn func(tx Tx) error) error
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database; calls after Close fail.
	Close() error
}

// Timestamp returns t as every store records it: in UTC, truncated to the
// millisecond. The zero time stays zero (a NULL column).
func Timestamp(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Millisecond)
}
