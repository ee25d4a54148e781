package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/store"
)

// RevocationSubject is the bus subject on which a node announces that an
// account's session state changed or a refresh token family was revoked,
// so every node updates its cache at once. The payload is text:
// "user <account id>" (re-read that account's state from the store) or
// "family <family id>" (that family is revoked).
const RevocationSubject = "taisen.auth.revocation"

// DefaultRevocationSync is how often the revocation cache is reloaded
// whole from the store: the bound on how long a node can miss a
// revocation whose bus announcement it lost.
const DefaultRevocationSync = 30 * time.Second

// revocations is a node's cache of everything that makes a signed,
// unexpired session token unacceptable: the accounts whose sessions are
// restricted (revoked epoch, disabled, deleted) and the refresh token
// families revoked by reuse detection. Checking a token reads only this
// cache; the store is read when the cache is (re)loaded and when the bus
// announces a change.
type revocations struct {
	store RevocationStore
	log   *slog.Logger
	now   func() time.Time
	// keep is how long a revoked family is remembered: the session TTL,
	// after which every session token of the family has expired.
	keep time.Duration

	mu sync.RWMutex
	// loaded is false until the first full load.
	loaded bool
	users  map[string]store.SessionState
	// families maps a revoked family to when it can be forgotten.
	families map[string]time.Time
	// seq counts point updates; touched holds the seq of each account's
	// last point update, so that a full reload that read the store
	// before a point update does not undo it.
	seq     uint64
	touched map[string]uint64
}

func newRevocations(st RevocationStore, log *slog.Logger, now func() time.Time, keep time.Duration) *revocations {
	return &revocations{
		store: st, log: log, now: now, keep: keep,
		users: map[string]store.SessionState{}, families: map[string]time.Time{}, touched: map[string]uint64{},
	}
}

// check returns nil when nothing the cache knows revokes c.
func (r *revocations) check(c Claims) error {
	r.mu.RLock()
	loaded := r.loaded
	st, restricted := r.users[c.UserID]
	_, familyRevoked := r.families[c.Family]
	r.mu.RUnlock()
	switch {
	case !loaded:
		// Fail closed: a node that cannot tell revoked sessions apart
		// does not accept any.
		return apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE, "session checks are not ready; retry")
	case restricted && st.Deleted:
		return apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "account no longer exists")
	case restricted && st.Disabled:
		return apierr.New(realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "account disabled")
	case restricted && c.Epoch < st.Epoch, c.Family != "" && familyRevoked:
		return apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "session revoked")
	}
	return nil
}

// load replaces the cache with the store's state, keeping point updates
// made while it read.
func (r *revocations) load(ctx context.Context) error {
	r.mu.RLock()
	start := r.seq
	r.mu.RUnlock()
	states, err := r.store.RestrictedSessions(ctx)
	if err != nil {
		return fmt.Errorf("auth: load revocations: %w", err)
	}
	now := r.now()
	fams, err := r.store.RevokedFamilies(ctx, now.Add(-r.keep))
	if err != nil {
		return fmt.Errorf("auth: load revocations: %w", err)
	}
	users := make(map[string]store.SessionState, len(states))
	for _, st := range states {
		users[st.AccountID] = st
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, seq := range r.touched {
		if seq <= start {
			delete(r.touched, id)
			continue
		}
		if st, ok := r.users[id]; ok {
			users[id] = st
		} else {
			delete(users, id)
		}
	}
	r.users = users
	for f, until := range r.families {
		if !now.Before(until) {
			delete(r.families, f)
		}
	}
	for _, f := range fams {
		r.families[f.Family] = f.RevokedAt.Add(r.keep)
	}
	r.loaded = true
	return nil
}

// reloadUser re-reads one account's state from the store.
func (r *revocations) reloadUser(ctx context.Context, id string) error {
	st, err := r.store.SessionState(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		st = store.SessionState{AccountID: id}
	case err != nil:
		return fmt.Errorf("auth: reload session state of %s: %w", id, err)
	}
	r.setUser(st)
	return nil
}

func (r *revocations) setUser(st store.SessionState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	r.touched[st.AccountID] = r.seq
	if st.Restricted() {
		r.users[st.AccountID] = st
	} else {
		delete(r.users, st.AccountID)
	}
}

func (r *revocations) revokeFamily(family string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.families[family] = r.now().Add(r.keep)
}

// handle applies a message from RevocationSubject.
func (r *revocations) handle(ctx context.Context, data []byte) {
	kind, id, ok := strings.Cut(string(data), " ")
	switch {
	case ok && kind == "user" && id != "":
		if err := r.reloadUser(ctx, id); err != nil {
			// The next full reload catches up.
			r.log.WarnContext(ctx, "auth: revocation announcement not applied", "user_id", id, "err", err)
		}
	case ok && kind == "family" && id != "":
		r.revokeFamily(id)
	default:
		r.log.WarnContext(ctx, "auth: malformed revocation announcement", "data", string(data))
	}
}

// announce tells every node (this one included, through the bus) to apply
// a change; without a bus it does nothing (the caller updated this node's
// cache already).
func announce(ctx context.Context, b bus.Bus, log *slog.Logger, msg string) {
	if b == nil {
		return
	}
	if err := b.Publish(ctx, RevocationSubject, []byte(msg)); err != nil {
		// Other nodes learn it at their next full reload.
		log.WarnContext(ctx, "auth: revocation not announced", "msg", msg, "err", err)
	}
}
