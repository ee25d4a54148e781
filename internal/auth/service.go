package auth

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/store"
)

// AccountStore is the part of store.Store that Service uses; the store
// implementations satisfy it. See store.Accounts, store.Credentials and
// store.Sessions for the methods' contracts.
type AccountStore interface {
	CreateAccount(ctx context.Context, a store.Account, c store.Credential) (store.Account, error)
	Account(ctx context.Context, id string) (store.Account, error)
	CredentialAccount(ctx context.Context, kind store.CredentialKind, subject string) (store.Credential, store.Account, error)
	SetAccountDisabled(ctx context.Context, id string, at time.Time) error
	RevocationStore
}

// RevocationStore is the part of store.Store that makes sessions and
// refresh tokens revocable.
type RevocationStore interface {
	RevokeSessions(ctx context.Context, accountID string) (int64, error)
	SessionState(ctx context.Context, accountID string) (store.SessionState, error)
	RestrictedSessions(ctx context.Context) ([]store.SessionState, error)
	ConsumeRefresh(ctx context.Context, u store.RefreshUse) error
	RevokedFamilies(ctx context.Context, since time.Time) ([]store.RevokedFamily, error)
	PruneRefreshFamilies(ctx context.Context, before time.Time) (int64, error)
}

// Config tunes a Service. The zero value is usable.
type Config struct {
	// UsernamePrefix starts generated usernames; "player_" when empty.
	// Generated usernames are the prefix and 10 random base32 characters.
	UsernamePrefix string
	// UsernameAttempts is how many generated usernames to try before
	// giving up when they collide; 5 when 0.
	UsernameAttempts int
	// RevocationSync is how often each node reloads its revocation cache
	// whole from the store; DefaultRevocationSync when 0. With a bus,
	// nodes learn a revocation at once and this only bounds how long a
	// lost announcement goes unnoticed.
	RevocationSync time.Duration
	// PasswordLogins bounds the password logins (email credentials: each
	// costs an argon2id hash) running or waiting for the hasher at once;
	// four per CPU (GOMAXPROCS) when 0. Over it, a login fails at once with
	// BUSY.
	PasswordLogins int
	// PasswordLoginsPerIP bounds them per client address;
	// DefaultPasswordLoginsPerIP when 0.
	PasswordLoginsPerIP int
	// TrustedProxies are the networks of reverse proxies whose
	// X-Forwarded-For header names the client address; empty means the
	// peer address is the client's and the header is ignored.
	TrustedProxies []netip.Prefix
}

// Deps are a Service's collaborators.
type Deps struct {
	// Accounts holds accounts and credentials. Required.
	Accounts AccountStore
	// Tokens issues and verifies tokens. Required.
	Tokens *TokenIssuer
	// Hasher hashes and verifies passwords. Required.
	Hasher *Hasher
	// Logger receives the service's logs; discarded when nil.
	Logger *slog.Logger
	// Now is the clock stamped into new account ids (UUIDv7); time.Now
	// when nil.
	Now func() time.Time
	// Bus, when set, carries revocations between nodes (see
	// RevocationSubject) so that every node's cache learns them at once.
	Bus bus.Bus
	// OnRevoke, when set, is called after an account's sessions were
	// revoked, the account disabled, or one of its refresh tokens reused
	// (which revokes that login), to close its live socket. It runs on
	// the caller's goroutine and should not block for long.
	OnRevoke func(ctx context.Context, userID string)
}

// Credential and username rules (see auth.proto).
const (
	deviceIDMin, deviceIDMax = 10, 128
	customIDMin, customIDMax = 6, 128
	emailMax                 = 254
	passwordMin, passwordMax = 8, 256
	usernameMin, usernameMax = 3, 64
	generatedSuffixLen       = 10
)

// Service authenticates credentials, creates accounts and refreshes
// sessions. It is safe for concurrent use.
type Service struct {
	accounts         AccountStore
	tokens           *TokenIssuer
	hasher           *Hasher
	log              *slog.Logger
	now              func() time.Time
	usernameAttempts int
	// newUsername returns a random username; tests replace it.
	newUsername func() string
	bus         bus.Bus
	onRevoke    func(ctx context.Context, userID string)
	revoked     *revocations
	sync        time.Duration
	passwords   *loginLimiter
	// trustedProxies is Config.TrustedProxies.
	trustedProxies []netip.Prefix

	// otherSecret rate-limits the warning about tokens signed with
	// another secret.
	otherSecret otherSecretWarning

	startOnce sync.Once
	stop      context.CancelFunc
	sub       bus.Subscription
	done      chan struct{}
}

// New returns a Service, or an error when a required dependency is missing
// or the configuration is invalid.
func New(cfg Config, deps Deps) (*Service, error) {
	switch {
	case deps.Accounts == nil:
		return nil, errors.New("auth: new service: Deps.Accounts is required")
	case deps.Tokens == nil:
		return nil, errors.New("auth: new service: Deps.Tokens is required")
	case deps.Hasher == nil:
		return nil, errors.New("auth: new service: Deps.Hasher is required")
	case cfg.UsernameAttempts < 0:
		return nil, errors.New("auth: new service: UsernameAttempts must not be negative")
	case cfg.RevocationSync < 0 || cfg.PasswordLogins < 0 || cfg.PasswordLoginsPerIP < 0:
		return nil, errors.New("auth: new service: RevocationSync, PasswordLogins and PasswordLoginsPerIP must not be negative")
	}
	prefix := cmp.Or(cfg.UsernamePrefix, "player_")
	if err := checkUsername(prefix + strings.Repeat("a", generatedSuffixLen)); err != nil {
		return nil, fmt.Errorf("auth: new service: UsernamePrefix %q makes invalid usernames: %w", prefix, err)
	}
	s := &Service{
		accounts:         deps.Accounts,
		tokens:           deps.Tokens,
		hasher:           deps.Hasher,
		log:              deps.Logger,
		now:              deps.Now,
		usernameAttempts: cmp.Or(cfg.UsernameAttempts, 5),
		newUsername:      func() string { return prefix + randomBase32(generatedSuffixLen) },
		bus:              deps.Bus,
		onRevoke:         deps.OnRevoke,
		sync:             cmp.Or(cfg.RevocationSync, DefaultRevocationSync),
		passwords: newLoginLimiter(cmp.Or(cfg.PasswordLogins, defaultPasswordLogins()),
			cmp.Or(cfg.PasswordLoginsPerIP, DefaultPasswordLoginsPerIP)),
		trustedProxies: append([]netip.Prefix(nil), cfg.TrustedProxies...),
		done:           make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.revoked = newRevocations(deps.Accounts, s.log, s.now, deps.Tokens.SessionTTL())
	return s, nil
}

// Start loads the revocation cache, subscribes to revocations announced
// on the bus and keeps the cache in sync with the store until Close.
// Until Start succeeds, VerifySession refuses every token (UNAVAILABLE).
// Calling Start again does nothing.
func (s *Service) Start(ctx context.Context) error {
	var err error
	s.startOnce.Do(func() { err = s.start(ctx) })
	return err
}

func (s *Service) start(ctx context.Context) error {
	if err := s.revoked.load(ctx); err != nil {
		close(s.done)
		return err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	if s.bus != nil {
		sub, err := s.bus.Subscribe(RevocationSubject, func(m *bus.Msg) { s.revoked.handle(runCtx, m.Data) })
		if err != nil {
			stop()
			close(s.done)
			return fmt.Errorf("auth: subscribe to %s: %w", RevocationSubject, err)
		}
		s.sub = sub
	}
	s.stop = stop
	go s.syncLoop(runCtx)
	return nil
}

// syncLoop reloads the revocation cache and prunes expired refresh token
// families every s.sync.
func (s *Service) syncLoop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.sync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.revoked.load(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "auth: revocation cache not refreshed", "err", err)
		}
		if _, err := s.accounts.PruneRefreshFamilies(ctx, s.now()); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "auth: expired refresh token families not pruned", "err", err)
		}
	}
}

// Close stops what Start started and waits for it. It does not close the
// store or the bus.
func (s *Service) Close() error {
	s.startOnce.Do(func() { close(s.done) }) // never started
	var err error
	if s.sub != nil {
		err = s.sub.Unsubscribe()
	}
	if s.stop != nil {
		s.stop()
	}
	<-s.done
	return err
}

// credential is a validated, normalised credential from a request.
type credential struct {
	kind     store.CredentialKind
	subject  string
	password string // email only
}

// Authenticate checks the request's credential and returns a session. An
// unknown credential fails with INVALID_CREDENTIALS unless req.Create is
// set, in which case it creates the account (Created is then true). A
// wrong password and an unknown email fail alike, in about the same time.
// Invalid input fails with BAD_REQUEST, a disabled account with
// PERMISSION_DENIED, a taken requested username with ALREADY_EXISTS, and a
// password login while too many run (from the client's address, see
// WithClientIP, or in all) with BUSY. The requested username is ignored
// when the account already exists.
func (s *Service) Authenticate(ctx context.Context, req *apiv1.AuthenticateRequest) (*apiv1.AuthenticateResponse, error) {
	cred, err := credentialFrom(req)
	if err != nil {
		return nil, err
	}
	username := req.GetUsername()
	if username != "" {
		if err := checkUsername(username); err != nil {
			return nil, err
		}
	}
	if cred.kind == store.CredentialEmail {
		// Every path of a password login runs argon2id once: bound them
		// before anything else so that a flood answers BUSY at once
		// instead of queueing everyone's logins behind the hasher.
		release, err := s.passwords.acquire(ClientIP(ctx))
		if err != nil {
			s.log.InfoContext(ctx, "auth: password login refused, busy", "client_ip", ClientIP(ctx))
			return nil, err
		}
		defer release()
	}

	c, a, err := s.accounts.CredentialAccount(ctx, cred.kind, cred.subject)
	switch {
	case err == nil:
		return s.login(ctx, cred, c, a)
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("auth: look up %s credential: %w", cred.kind, err)
	case req.GetCreate():
		return s.create(ctx, cred, username)
	}
	if cred.kind == store.CredentialEmail {
		// Burn the time a password check takes so that an unknown email
		// cannot be told from a wrong password.
		if err := s.hasher.VerifyDummy(ctx, cred.password); err != nil {
			return nil, err
		}
	}
	s.log.DebugContext(ctx, "auth: unknown credential", "kind", cred.kind)
	return nil, errInvalidCredentials()
}

// login checks the password of an existing credential and opens a session
// for its account: a new token family under the account's session epoch.
// It writes nothing.
func (s *Service) login(ctx context.Context, cred credential, c store.Credential, a store.Account) (*apiv1.AuthenticateResponse, error) {
	if cred.kind == store.CredentialEmail {
		ok, err := s.hasher.Verify(ctx, c.Secret, cred.password)
		if err != nil {
			return nil, fmt.Errorf("auth: verify password of account %s: %w", c.AccountID, err)
		}
		if !ok {
			s.log.InfoContext(ctx, "auth: wrong password", "user_id", c.AccountID)
			return nil, errInvalidCredentials()
		}
	}
	// The disabled check comes after the password check so that it does
	// not reveal anything to someone without the password.
	if err := checkEnabled(a); err != nil {
		s.log.InfoContext(ctx, "auth: disabled account", "user_id", a.ID)
		return nil, err
	}
	sess, err := s.tokens.IssueGrant(Grant{UserID: a.ID, Username: a.Username, Family: NewFamily(), Epoch: a.SessionEpoch})
	if err != nil {
		return nil, err
	}
	s.log.DebugContext(ctx, "auth: logged in", "user_id", a.ID, "kind", cred.kind)
	return &apiv1.AuthenticateResponse{Session: sess}, nil
}

// create makes a new account for an unknown credential. If another request
// creates the same credential first, it proceeds as a login.
func (s *Service) create(ctx context.Context, cred credential, username string) (*apiv1.AuthenticateResponse, error) {
	var secret string
	if cred.kind == store.CredentialEmail {
		var err error
		if secret, err = s.hasher.Hash(ctx, cred.password); err != nil {
			return nil, err
		}
	}
	for attempt := 1; ; attempt++ {
		name := username
		if name == "" {
			name = s.newUsername()
		}
		id, err := newAccountID(s.now())
		if err != nil {
			return nil, err
		}
		a, err := s.accounts.CreateAccount(ctx,
			store.Account{ID: id, Username: name},
			store.Credential{Kind: cred.kind, Subject: cred.subject, AccountID: id, Secret: secret})
		if err == nil {
			sess, err := s.tokens.IssueGrant(Grant{UserID: a.ID, Username: a.Username, Family: NewFamily()})
			if err != nil {
				return nil, err
			}
			s.log.InfoContext(ctx, "auth: account created", "user_id", a.ID, "username", a.Username, "kind", cred.kind)
			return &apiv1.AuthenticateResponse{Session: sess, Created: true}, nil
		}
		if !errors.Is(err, store.ErrAlreadyExists) {
			return nil, fmt.Errorf("auth: create account: %w", err)
		}
		// Something is taken: the credential (a concurrent create won),
		// the username, or, in theory, the id. Only the first is visible.
		c, a, err := s.accounts.CredentialAccount(ctx, cred.kind, cred.subject)
		if err == nil {
			return s.login(ctx, cred, c, a)
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("auth: look up %s credential: %w", cred.kind, err)
		}
		if username != "" {
			return nil, apierr.New(realtimev1.ErrorCode_ERROR_CODE_ALREADY_EXISTS, "username taken")
		}
		if attempt >= s.usernameAttempts {
			return nil, fmt.Errorf("auth: create account: no free generated username after %d attempts: %w", attempt, store.ErrAlreadyExists)
		}
	}
}

// Refresh exchanges a refresh token for a new session and refresh token.
// Each refresh token works once: it returns the next token of its login's
// chain. Presenting one a second time revokes the whole chain (the
// sessions it issued included) and fails with UNAUTHENTICATED, as does a
// revoked chain, a token revoked by RevokeSessions, any invalid token
// (TOKEN_EXPIRED when merely expired) and one whose account no longer
// exists; a disabled account fails with PERMISSION_DENIED. A reuse also
// closes the account's live socket (Deps.OnRevoke): which login it
// belongs to cannot be told, and the thief may hold it.
func (s *Service) Refresh(ctx context.Context, req *apiv1.RefreshRequest) (*apiv1.RefreshResponse, error) {
	if req.GetRefreshToken() == "" {
		return nil, apierr.BadRequest("refresh_token is required")
	}
	claims, err := s.tokens.VerifyRefresh(req.GetRefreshToken())
	if err != nil {
		s.warnOtherSecret(ctx, err, TokenRefresh)
		return nil, err
	}
	if claims.Family == "" {
		// Issued before refresh tokens were single-use: it cannot be
		// tracked, so it is not honoured.
		return nil, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "refresh token too old; authenticate again")
	}
	a, err := s.accounts.Account(ctx, claims.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "account no longer exists")
	}
	if err != nil {
		return nil, fmt.Errorf("auth: load account %s: %w", claims.UserID, err)
	}
	if err := checkEnabled(a); err != nil {
		return nil, err
	}
	if claims.Epoch < a.SessionEpoch {
		return nil, errRefreshRevoked()
	}
	next := Grant{UserID: a.ID, Username: a.Username, Family: claims.Family, Generation: claims.Generation + 1, Epoch: a.SessionEpoch}
	err = s.accounts.ConsumeRefresh(ctx, store.RefreshUse{
		Family: claims.Family, AccountID: a.ID, Generation: claims.Generation,
		ExpiresAt: s.now().Add(s.tokens.RefreshTTL()),
	})
	switch {
	case errors.Is(err, store.ErrRefreshReused):
		s.log.WarnContext(ctx, "auth: refresh token reused, login revoked", "user_id", a.ID, "family", claims.Family, "generation", claims.Generation)
		s.revoked.revokeFamily(claims.Family)
		announce(ctx, s.bus, s.log, "family "+claims.Family)
		if s.onRevoke != nil {
			s.onRevoke(ctx, a.ID)
		}
		return nil, apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, err,
			"refresh token already used; every session of this login is revoked, authenticate again")
	case errors.Is(err, store.ErrRevoked):
		return nil, errRefreshRevoked()
	case errors.Is(err, store.ErrNotFound):
		return nil, apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, err, "invalid refresh token")
	case err != nil:
		return nil, fmt.Errorf("auth: consume refresh token of %s: %w", a.ID, err)
	}
	// The username comes from the account, not the old token, so a
	// refreshed session picks up a rename.
	sess, err := s.tokens.IssueGrant(next)
	if err != nil {
		return nil, err
	}
	return &apiv1.RefreshResponse{Session: sess}, nil
}

// VerifySession checks a session token for the socket gateway: its
// signature and expiry (see TokenIssuer.VerifySession), then, from the
// in-memory revocation cache without touching the store, that its
// account is neither disabled (PERMISSION_DENIED) nor deleted, that its
// sessions were not revoked after it was issued and that its login's
// refresh chain was not revoked (UNAUTHENTICATED).
func (s *Service) VerifySession(token string) (Claims, error) {
	c, err := s.tokens.VerifySession(token)
	if err != nil {
		s.warnOtherSecret(context.Background(), err, TokenSession)
		return Claims{}, err
	}
	if err := s.revoked.check(c); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// OtherSecretWarnEvery is how often at most Service logs that it refused
// tokens signed with another secret.
const OtherSecretWarnEvery = time.Minute

// otherSecretWarning counts the tokens refused for their signature and
// remembers when it last warned about them.
type otherSecretWarning struct {
	mu      sync.Mutex
	warned  time.Time // zero: never
	refused int64     // since the last warning
}

// warnOtherSecret logs a warning, at most once per OtherSecretWarnEvery,
// when err says a token's signature matches none of this node's secrets:
// the usual cause is a cluster whose nodes do not share one token secret.
func (s *Service) warnOtherSecret(ctx context.Context, err error, kind TokenKind) {
	if !errors.Is(err, errOtherSecret) {
		return
	}
	now := s.now()
	w := &s.otherSecret
	w.mu.Lock()
	w.refused++
	refused := w.refused
	warn := w.warned.IsZero() || now.Sub(w.warned) >= OtherSecretWarnEvery
	if warn {
		w.warned, w.refused = now, 0
	}
	w.mu.Unlock()
	if warn {
		s.log.WarnContext(ctx, "auth: refused a token signed with a different token secret (--token-secret); "+
			"every node of a cluster must share one secret (TAISEN_TOKEN_SECRET, or the same token.secret file), "+
			"or tokens issued by one node are refused by the others (a single node sees this for forged tokens too)",
			"kind", kind, "refused", refused, "next_warning_after", OtherSecretWarnEvery)
	}
}

// RevokeSessions makes every existing session token and refresh token of
// the account invalid on every node, and closes its live socket through
// Deps.OnRevoke. It fails with NOT_FOUND when the account does not exist.
func (s *Service) RevokeSessions(ctx context.Context, userID string) error {
	if _, err := s.accounts.RevokeSessions(ctx, userID); err != nil {
		return s.accountErr(userID, "revoke sessions", err)
	}
	s.log.InfoContext(ctx, "auth: sessions revoked", "user_id", userID)
	return s.afterChange(ctx, userID, true)
}

// SetDisabled disables (disabled true) or re-enables an account. A
// disabled account cannot log in, refresh or open a socket with a token
// it holds; disabling closes its live socket through Deps.OnRevoke. It
// fails with NOT_FOUND when the account does not exist.
func (s *Service) SetDisabled(ctx context.Context, userID string, disabled bool) error {
	var at time.Time
	if disabled {
		at = s.now()
	}
	if err := s.accounts.SetAccountDisabled(ctx, userID, at); err != nil {
		return s.accountErr(userID, "set disabled", err)
	}
	s.log.InfoContext(ctx, "auth: account disabled changed", "user_id", userID, "disabled", disabled)
	return s.afterChange(ctx, userID, disabled)
}

// afterChange brings this node's cache up to date with the store, tells
// the other nodes, and closes the live socket when kick is set.
func (s *Service) afterChange(ctx context.Context, userID string, kick bool) error {
	if err := s.revoked.reloadUser(ctx, userID); err != nil {
		return err
	}
	announce(ctx, s.bus, s.log, "user "+userID)
	if kick && s.onRevoke != nil {
		s.onRevoke(ctx, userID)
	}
	return nil
}

func (s *Service) accountErr(userID, what string, err error) error {
	if userID == "" {
		return apierr.BadRequest("user_id is required")
	}
	if errors.Is(err, store.ErrNotFound) {
		return apierr.New(realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND, "no such account")
	}
	return fmt.Errorf("auth: %s of %s: %w", what, userID, err)
}

func errRefreshRevoked() error {
	return apierr.New(realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "refresh token revoked; authenticate again")
}

func errInvalidCredentials() error {
	return apierr.New(realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS, "invalid credentials")
}

func checkEnabled(a store.Account) error {
	if !a.DisabledAt.IsZero() {
		return apierr.New(realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED, "account disabled")
	}
	return nil
}

// credentialFrom validates and normalises the request's one credential.
func credentialFrom(req *apiv1.AuthenticateRequest) (credential, error) {
	switch c := req.GetCredential().(type) {
	case *apiv1.AuthenticateRequest_Device:
		id := c.Device.GetId()
		if !printableASCII(id, deviceIDMin, deviceIDMax) {
			return credential{}, apierr.BadRequest("device.id must be %d-%d printable ASCII characters", deviceIDMin, deviceIDMax)
		}
		return credential{kind: store.CredentialDevice, subject: id}, nil
	case *apiv1.AuthenticateRequest_Custom:
		id := c.Custom.GetId()
		if !printableASCII(id, customIDMin, customIDMax) {
			return credential{}, apierr.BadRequest("custom.id must be %d-%d printable ASCII characters", customIDMin, customIDMax)
		}
		return credential{kind: store.CredentialCustom, subject: id}, nil
	case *apiv1.AuthenticateRequest_Email:
		email, err := normaliseEmail(c.Email.GetEmail())
		if err != nil {
			return credential{}, err
		}
		pw := c.Email.GetPassword()
		if len(pw) < passwordMin || len(pw) > passwordMax {
			return credential{}, apierr.BadRequest("email.password must be %d-%d bytes", passwordMin, passwordMax)
		}
		return credential{kind: store.CredentialEmail, subject: email, password: pw}, nil
	default:
		return credential{}, apierr.BadRequest("exactly one credential (device, custom or email) is required")
	}
}

// printableASCII reports whether s is min-max bytes of printable ASCII
// (0x20-0x7E, space included).
func printableASCII(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// normaliseEmail checks that s is a bare address (no display name, no
// angle brackets, no surrounding space) that net/mail accepts, and returns
// it in lower case.
func normaliseEmail(s string) (string, error) {
	if s == "" {
		return "", apierr.BadRequest("email.email is required")
	}
	if len(s) > emailMax {
		return "", apierr.BadRequest("email.email must be at most %d bytes", emailMax)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", apierr.BadRequest("email.email must be a valid email address")
	}
	lower := strings.ToLower(s)
	if len(lower) > emailMax {
		return "", apierr.BadRequest("email.email must be at most %d bytes", emailMax)
	}
	return lower, nil
}

// checkUsername enforces 3-64 characters of [A-Za-z0-9_.-].
func checkUsername(u string) error {
	ok := len(u) >= usernameMin && len(u) <= usernameMax
	for i := 0; ok && i < len(u); i++ {
		ch := u[i]
		ok = ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' ||
			ch == '_' || ch == '.' || ch == '-'
	}
	if !ok {
		return apierr.BadRequest("username must be %d-%d characters of [A-Za-z0-9_.-]", usernameMin, usernameMax)
	}
	return nil
}

// randomBase32 returns n random characters of the lower-case RFC 4648
// base32 alphabet.
func randomBase32(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand crashes the program instead)
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return string(b)
}

// newAccountID returns a UUIDv7 whose timestamp is now: 48 bits of Unix
// milliseconds followed by random bits.
func newAccountID(now time.Time) (string, error) {
	u, err := uuid.NewRandom() // version 4: random, variant bits set
	if err != nil {
		return "", fmt.Errorf("auth: account id: %w", err)
	}
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(u[0:6], ms[2:8])
	u[6] = 0x70 | u[6]&0x0f
	return u.String(), nil
}
