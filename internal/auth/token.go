package auth

import (
	"cmp"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

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

// TokenIssuer issues and verifies HS256 session and refresh tokens. It is
// safe for concurrent use.
//
// The tokens are JWTs (RFC 7519) that this package encodes and decodes
// itself, without reflection: the header is always tokenHeader and the
// payload holds the claims in the order appendClaims writes them. See
// token_codec.go.
type TokenIssuer struct {
	// signer holds HMAC state keyed with the signing secret.
	signer *macPool
	// verifiers are keyed with the signing secret, then the previous ones.
	verifiers  []*macPool
	sessionTTL time.Duration
	refreshTTL time.Duration
	now        func() time.Time
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
		signer:     newMACPool(cfg.Secret),
		sessionTTL: cmp.Or(cfg.SessionTTL, DefaultSessionTTL),
		refreshTTL: cmp.Or(cfg.RefreshTTL, DefaultRefreshTTL),
		now:        cfg.Now,
	}
	if t.now == nil {
		t.now = time.Now
	}
	t.verifiers = append(t.verifiers, t.signer)
	for i, s := range cfg.PreviousSecrets {
		if len(s) < MinSecretLen {
			return nil, fmt.Errorf("auth: previous token secret %d must be at least %d bytes, got %d", i, MinSecretLen, len(s))
		}
		t.verifiers = append(t.verifiers, newMACPool(s))
	}
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
	// One read of the system's randomness for both token ids.
	var ids [32]byte
	if _, err := rand.Read(ids[:]); err != nil {
		return nil, fmt.Errorf("auth: token ids: %w", err)
	}
	now := t.now()
	iat := now.Unix()
	sessionExp := now.Add(t.sessionTTL).Truncate(time.Second)
	refreshExp := now.Add(t.refreshTTL).Truncate(time.Second)
	session := t.sign(g, TokenSession, uuidV4(ids[:16]), iat, sessionExp.Unix())
	refresh := t.sign(g, TokenRefresh, uuidV4(ids[16:]), iat, refreshExp.Unix())
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

// sign returns the token for g's claims, of the kind given, with token id
// jti, issued at iat and expiring at exp (Unix seconds).
func (t *TokenIssuer) sign(g Grant, kind TokenKind, jti string, iat, exp int64) string {
	m := t.signer.get()
	defer t.signer.put(m)
	var claims [512]byte
	payload := appendClaims(claims[:0], wireClaims{
		Subject: g.UserID, Username: g.Username, Kind: kind, TokenID: jti, Family: g.Family,
		Generation: g.Generation, Epoch: g.Epoch, IssuedAt: iat, ExpiresAt: exp,
	})
	b := append(m.buf[:0], tokenHeader...)
	b = append(b, '.')
	b = b64.AppendEncode(b, payload)
	m.h.Write(b)
	b = append(b, '.')
	b = b64.AppendEncode(b, m.h.Sum(m.sum[:0]))
	m.buf = b
	return string(b)
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
	header, rest, _ := strings.Cut(token, ".")
	payload, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 {
		return invalid(errors.New("not three segments"))
	}
	if header != tokenHeader {
		return invalid(errors.New("unexpected header (not HS256)"))
	}
	m := t.signer.get()
	defer t.signer.put(m)
	var err error
	m.buf = append(m.buf[:0], token...)
	signed := m.buf[:len(header)+1+len(payload)]
	var mac [sha256.Size]byte
	if n, err := b64.Decode(mac[:], m.buf[len(signed)+1:]); err != nil || n != len(mac) || len(sig) != b64.EncodedLen(len(mac)) {
		return invalid(errors.New("malformed signature"))
	}
	if !t.signedByUs(m, signed, mac) {
		return invalid(errOtherSecret)
	}
	// The signature is checked first: what follows decodes only what a
	// holder of the secret wrote.
	m.raw, err = b64.AppendDecode(m.raw[:0], signed[len(header)+1:])
	if err != nil {
		return invalid(fmt.Errorf("payload: %w", err))
	}
	c, err := decodeClaims(m.raw)
	if err != nil {
		return invalid(err)
	}
	now := t.now()
	switch {
	case !c.has(claimExp):
		return invalid(errors.New("no expiry"))
	case !now.Before(time.Unix(c.ExpiresAt, 0)):
		if c.Kind == want {
			return Claims{}, apierr.Wrap(realtimev1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED, errTokenExpired, string(want)+" token expired")
		}
		return invalid(errTokenExpired)
	case c.has(claimNbf) && now.Before(time.Unix(c.NotBefore, 0)):
		return invalid(errors.New("token not valid yet"))
	case c.Kind != want:
		return invalid(fmt.Errorf("token kind %q", c.Kind))
	case c.Subject == "":
		return invalid(errors.New("no subject"))
	case c.TokenID == "":
		return invalid(errors.New("no token id"))
	case !c.has(claimIat):
		return invalid(errors.New("no issued-at"))
	case c.Generation < 0 || c.Epoch < 0:
		return invalid(errors.New("negative generation or epoch"))
	}
	return Claims{
		UserID:     c.Subject,
		Username:   c.Username,
		Kind:       c.Kind,
		TokenID:    c.TokenID,
		IssuedAt:   time.Unix(c.IssuedAt, 0),
		ExpiresAt:  time.Unix(c.ExpiresAt, 0),
		Family:     c.Family,
		Generation: c.Generation,
		Epoch:      c.Epoch,
	}, nil
}

// signedByUs reports whether mac is the HMAC-SHA256 of signed under one
// of the verification secrets. m is the signing secret's.
func (t *TokenIssuer) signedByUs(m *macState, signed []byte, mac [sha256.Size]byte) bool {
	m.h.Write(signed)
	if hmac.Equal(m.h.Sum(m.sum[:0]), mac[:]) {
		return true
	}
	for _, p := range t.verifiers[1:] {
		pm := p.get()
		pm.h.Write(signed)
		ok := hmac.Equal(pm.h.Sum(pm.sum[:0]), mac[:])
		p.put(pm)
		if ok {
			return true
		}
	}
	return false
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
