package auth

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
)

// TokenKind tells a session token from a refresh token.
type TokenKind string

// The token kinds. A token of one kind is never accepted as the other.
const (
	// TokenSession is the short-lived token a client presents on the socket.
	TokenSession TokenKind = "session"
	// TokenRefresh is the long-lived token exchanged for a new session.
	TokenRefresh TokenKind = "refresh"
)

// Token defaults and limits.
const (
	// DefaultSessionTTL is the lifetime of a session token.
	DefaultSessionTTL = time.Hour
	// DefaultRefreshTTL is the lifetime of a refresh token.
	DefaultRefreshTTL = 30 * 24 * time.Hour
	// MinSecretLen is the minimum length of a signing secret in bytes
	// (the HS256 output size).
	MinSecretLen = 32
	// maxTokenLen bounds the work done on a presented token; ours are
	// about 350 bytes.
	maxTokenLen = 4096
)

// TokenConfig configures a TokenIssuer.
type TokenConfig struct {
	// Secret signs new tokens and verifies presented ones; at least
	// MinSecretLen bytes.
	Secret []byte
	// PreviousSecrets still verify tokens (not sign them), so the secret
	// can rotate without logging everyone out: move the old Secret here
	// for at least RefreshTTL. Each is at least MinSecretLen bytes.
	PreviousSecrets [][]byte
	// SessionTTL is the session token lifetime; DefaultSessionTTL when 0.
	SessionTTL time.Duration
	// RefreshTTL is the refresh token lifetime; DefaultRefreshTTL when 0.
	RefreshTTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Claims are the verified contents of a token.
type Claims struct {
	// UserID is the account id (the JWT subject).
	UserID string
	// Username is the account's username when the token was issued.
	Username string
	// Kind is the token kind.
	Kind TokenKind
	// TokenID is the unique token id (the JWT jti).
	TokenID string
	// IssuedAt and ExpiresAt bound the token's validity (second precision).
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Family names the login the token descends from: every session and
	// refresh token of one login, refreshes included, shares it. Empty in
	// tokens issued before families existed.
	Family string
	// Generation is a refresh token's place in its family's chain (0 for
	// the login's own); in a session token, that of the refresh token
	// issued with it.
	Generation int64
	// Epoch is the account's session epoch when the token was issued; a
	// token under an older epoch than the account's is revoked.
	Epoch int64
}

// Grant says whom and what a pair of tokens is issued for.
type Grant struct {
	UserID   string
	Username string
	// Family names the login; NewFamily makes one for a new login.
	Family string
	// Generation is the new refresh token's place in the family's chain.
	Generation int64
	// Epoch is the account's current session epoch.
	Epoch int64
}

// wireClaims is the JWT payload.
type wireClaims struct {
	jwt.RegisteredClaims
	Username   string    `json:"username"`
	Kind       TokenKind `json:"kind"`
	Family     string    `json:"fam,omitempty"`
	Generation int64     `json:"gen,omitempty"`
	Epoch      int64     `json:"ep,omitempty"`
}

// TokenIssuer issues and verifies HS256 session and refresh tokens. It is
// safe for concurrent use.
type TokenIssuer struct {
	secret     []byte
	verifyKeys jwt.VerificationKeySet
	sessionTTL time.Duration
	refreshTTL time.Duration
	now        func() time.Time
	parser     *jwt.Parser
}

// NewTokenIssuer returns a TokenIssuer for cfg, or an error when a secret
// is shorter than MinSecretLen or a TTL is negative. It copies the secrets.
func NewTokenIssuer(cfg TokenConfig) (*TokenIssuer, error) {
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("auth: token secret must be at least %d bytes, got %d", MinSecretLen, len(cfg.Secret))
	}
	if cfg.SessionTTL < 0 || cfg.RefreshTTL < 0 {
		return nil, errors.New("auth: token TTLs must not be negative")
	}
	t := &TokenIssuer{
		secret:     append([]byte(nil), cfg.Secret...),
		sessionTTL: cmp.Or(cfg.SessionTTL, DefaultSessionTTL),
		refreshTTL: cmp.Or(cfg.RefreshTTL, DefaultRefreshTTL),
		now:        cfg.Now,
	}
	if t.now == nil {
		t.now = time.Now
	}
	t.verifyKeys.Keys = append(t.verifyKeys.Keys, t.secret)
	for i, s := range cfg.PreviousSecrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("auth: previous token secret %d must be at least %d bytes, got %d", i, MinSecretLen, len(s))
		}
		t.verifyKeys.Keys = append(t.verifyKeys.Keys, append([]byte(nil), s...))
	}
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(t.now),
	)
	return t, nil
}

// NewFamily returns a new, unique token family id for a login.
func NewFamily() string { return uuid.NewString() }

// Issue returns a new session token and refresh token for the account,
// starting a new family under session epoch 0. Service uses IssueGrant.
func (t *TokenIssuer) Issue(userID, username string) (*apiv1.Session, error) {
	return t.IssueGrant(Grant{UserID: userID, Username: username, Family: NewFamily()})
}

// IssueGrant returns a new session token and refresh token for g.
// Expiries in the Session are Unix milliseconds and equal the tokens' exp
// claims (which have second precision).
func (t *TokenIssuer) IssueGrant(g Grant) (*apiv1.Session, error) {
	if g.UserID == "" {
		return nil, errors.New("auth: issue token: empty user id")
	}
	if g.Family == "" {
		return nil, errors.New("auth: issue token: empty family")
	}
	now := t.now()
	session, sessionExp, err := t.sign(g, TokenSession, now, t.sessionTTL)
	if err != nil {
		return nil, err
	}
	refresh, refreshExp, err := t.sign(g, TokenRefresh, now, t.refreshTTL)
	if err != nil {
		return nil, err
	}
	userID, username := g.UserID, g.Username
	return &apiv1.Session{
		Token:              session,
		TokenExpiresAtMs:   sessionExp.UnixMilli(),
		RefreshToken:       refresh,
		RefreshExpiresAtMs: refreshExp.UnixMilli(),
		UserId:             userID,
		Username:           username,
	}, nil
}

// RefreshTTL is the lifetime of refresh tokens.
func (t *TokenIssuer) RefreshTTL() time.Duration { return t.refreshTTL }

// SessionTTL is the lifetime of session tokens.
func (t *TokenIssuer) SessionTTL() time.Duration { return t.sessionTTL }

func (t *TokenIssuer) sign(g Grant, kind TokenKind, now time.Time, ttl time.Duration) (string, time.Time, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: token id: %w", err)
	}
	iat := now.Truncate(time.Second)
	exp := now.Add(ttl).Truncate(time.Second)
	c := wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   g.UserID,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        id.String(),
		},
		Username:   g.Username,
		Kind:       kind,
		Family:     g.Family,
		Generation: g.Generation,
		Epoch:      g.Epoch,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign %s token: %w", kind, err)
	}
	return s, exp, nil
}

// VerifySession checks a session token and returns its claims. An expired
// token fails with code TOKEN_EXPIRED, any other invalid token (bad
// signature or algorithm, malformed, a refresh token) with UNAUTHENTICATED.
func (t *TokenIssuer) VerifySession(token string) (Claims, error) {
	return t.verify(token, TokenSession)
}

// VerifyRefresh checks a refresh token and returns its claims, failing
// like VerifySession (a session token is not a refresh token).
func (t *TokenIssuer) VerifyRefresh(token string) (Claims, error) {
	return t.verify(token, TokenRefresh)
}

func (t *TokenIssuer) verify(token string, want TokenKind) (Claims, error) {
	// Messages are fixed strings: they never echo the token.
	invalid := func(cause error) (Claims, error) {
		return Claims{}, apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, cause, "invalid "+string(want)+" token")
	}
	if token == "" {
		return invalid(errors.New("empty token"))
	}
	if len(token) > maxTokenLen {
		return invalid(errors.New("token too long"))
	}
	if !tokenAlphabet(token) {
		// The base64 decoder skips \r and \n, which would let one token
		// have many spellings.
		return invalid(errors.New("character outside base64url and '.'"))
	}
	var c wireClaims
	_, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.verifyKeys, nil })
	if err != nil {
		// The signature is checked before the claims, so ErrTokenExpired
		// means a genuine token of ours that is past its exp.
		if errors.Is(err, jwt.ErrTokenExpired) && c.Kind == want {
			return Claims{}, apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED, err, string(want)+" token expired")
		}
		return invalid(err)
	}
	switch {
	case c.Kind != want:
		return invalid(fmt.Errorf("token kind %q", c.Kind))
	case c.Subject == "":
		return invalid(errors.New("no subject"))
	case c.ID == "":
		return invalid(errors.New("no token id"))
	case c.IssuedAt == nil:
		return invalid(errors.New("no issued-at"))
	case c.Generation < 0 || c.Epoch < 0:
		return invalid(errors.New("negative generation or epoch"))
	}
	return Claims{
		UserID:     c.Subject,
		Username:   c.Username,
		Kind:       c.Kind,
		TokenID:    c.ID,
		IssuedAt:   c.IssuedAt.Time,
		ExpiresAt:  c.ExpiresAt.Time,
		Family:     c.Family,
		Generation: c.Generation,
		Epoch:      c.Epoch,
	}, nil
}

// tokenAlphabet reports whether s holds only unpadded base64url characters
// and dots.
func tokenAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
