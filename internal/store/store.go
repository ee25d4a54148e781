// Package store owns durable data: accounts and their credentials today,
// the meta services' tables later. It declares the Store interface and the
// records it holds; the implementations live in subpackages named after
// their engine (store/sqlite for single-node mode, store/postgres for
// cluster mode) and both pass the one conformance suite in store/storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every Store implementation. Check them with errors.Is.
var (
	// ErrNotFound means the record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists means a unique key (account id, username or
	// credential) is taken.
	ErrAlreadyExists = errors.New("store: already exists")
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

// Store is the durable state of a taisen deployment. Implementations are
// safe for concurrent use.
type Store interface {
	// CreateAccount inserts an account together with its first credential,
	// atomically. It returns ErrAlreadyExists (and inserts nothing) when the
	// account id, the username or the credential is taken.
	CreateAccount(ctx context.Context, a Account, c Credential) (Account, error)
	// Account returns the account with that id, or ErrNotFound.
	Account(ctx context.Context, id string) (Account, error)
	// AccountByUsername returns the account with that username, or ErrNotFound.
	AccountByUsername(ctx context.Context, username string) (Account, error)
	// Credential returns the credential (kind, subject), or ErrNotFound.
	Credential(ctx context.Context, kind CredentialKind, subject string) (Credential, error)
	// Credentials lists an account's credentials ordered by kind, subject.
	Credentials(ctx context.Context, accountID string) ([]Credential, error)
	// LinkCredential adds a credential to an existing account: ErrNotFound
	// when the account does not exist, ErrAlreadyExists when the credential
	// is taken (by any account).
	LinkCredential(ctx context.Context, c Credential) error
	// UnlinkCredential removes a credential, or returns ErrNotFound.
	UnlinkCredential(ctx context.Context, kind CredentialKind, subject string) error
	// SetAccountDisabled disables (at != zero) or re-enables an account.
	SetAccountDisabled(ctx context.Context, id string, at time.Time) error
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
