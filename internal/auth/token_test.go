package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
)

const (
	codeUnauthenticated = realtimev1.ErrorCode_ERROR_CODE_UNAUTHENTICATED
	codeTokenExpired    = realtimev1.ErrorCode_ERROR_CODE_TOKEN_EXPIRED
)

func newTestIssuer(t *testing.T, clock *testClock, secret []byte, previous ...[]byte) *TokenIssuer {
	t.Helper()
	ti, err := NewTokenIssuer(TokenConfig{Secret: secret, PreviousSecrets: previous, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return ti
}

func TestNewTokenIssuerErrors(t *testing.T) {
	short := bytes.Repeat([]byte("x"), MinSecretLen-1)
	for _, tc := range []struct {
		name    string
		cfg     TokenConfig
		wantErr string
	}{
		{"ok", TokenConfig{Secret: testSecret}, ""},
		{"no secret", TokenConfig{}, "auth: token secret must be at least 32 bytes, got 0"},
		{"short secret", TokenConfig{Secret: short}, "auth: token secret must be at least 32 bytes, got 31"},
		{"short previous", TokenConfig{Secret: testSecret, PreviousSecrets: [][]byte{testSecret, short}}, "auth: previous token secret 1 must be at least 32 bytes, got 31"},
		{"negative ttl", TokenConfig{Secret: testSecret, SessionTTL: -time.Second}, "auth: token TTLs must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTokenIssuer(tc.cfg)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.wantErr {
				t.Errorf("NewTokenIssuer error = %q, want %q", got, tc.wantErr)
			}
		})
	}
}

func TestIssueAndVerify(t *testing.T) {
	clock := newTestClock()
	ti := newTestIssuer(t, clock, testSecret)
	sess, err := ti.Issue("user-1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	wantSessionExp := t0.Add(DefaultSessionTTL).Truncate(time.Second)
	wantRefreshExp := t0.Add(DefaultRefreshTTL).Truncate(time.Second)
	if got, want := sess.GetTokenExpiresAtMs(), wantSessionExp.UnixMilli(); got != want {
		t.Errorf("TokenExpiresAtMs = %d, want %d", got, want)
	}
	if got, want := sess.GetRefreshExpiresAtMs(), wantRefreshExp.UnixMilli(); got != want {
		t.Errorf("RefreshExpiresAtMs = %d, want %d", got, want)
	}
	if sess.GetUserId() != "user-1" || sess.GetUsername() != "alice" {
		t.Errorf("Session user = %q, %q; want user-1, alice", sess.GetUserId(), sess.GetUsername())
	}

	c, err := ti.VerifySession(sess.GetToken())
	if err != nil {
		t.Fatalf("VerifySession = %v", err)
	}
	if c.UserID != "user-1" || c.Username != "alice" || c.Kind != TokenSession {
		t.Errorf("claims = %+v, want user-1, alice, session", c)
	}
	if !c.IssuedAt.Equal(t0.Truncate(time.Second)) || !c.ExpiresAt.Equal(wantSessionExp) {
		t.Errorf("claims iat, exp = %v, %v; want %v, %v", c.IssuedAt, c.ExpiresAt, t0.Truncate(time.Second), wantSessionExp)
	}
	if _, err := uuid.Parse(c.TokenID); err != nil {
		t.Errorf("claims jti %q is not a UUID: %v", c.TokenID, err)
	}
	rc, err := ti.VerifyRefresh(sess.GetRefreshToken())
	if err != nil {
		t.Fatalf("VerifyRefresh = %v", err)
	}
	if rc.Kind != TokenRefresh || rc.UserID != "user-1" || rc.TokenID == c.TokenID {
		t.Errorf("refresh claims = %+v; want kind refresh, user-1, a jti of its own", rc)
	}

	// Kinds do not cross.
	if _, err := ti.VerifyRefresh(sess.GetToken()); err != nil {
		wantCode(t, err, codeUnauthenticated)
	} else {
		t.Error("VerifyRefresh accepted a session token")
	}
	if _, err := ti.VerifySession(sess.GetRefreshToken()); err != nil {
		wantCode(t, err, codeUnauthenticated)
	} else {
		t.Error("VerifySession accepted a refresh token")
	}

	if _, err := ti.Issue("", "alice"); err == nil {
		t.Error("Issue with an empty user id succeeded")
	}
}

func TestTokenExpiry(t *testing.T) {
	clock := newTestClock()
	ti, err := NewTokenIssuer(TokenConfig{Secret: testSecret, Now: clock.Now, SessionTTL: time.Minute, RefreshTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := ti.Issue("user-1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	sessionExp := time.UnixMilli(sess.GetTokenExpiresAtMs())
	if want := t0.Add(time.Minute).Truncate(time.Second); !sessionExp.Equal(want) {
		t.Fatalf("session expiry = %v, want %v", sessionExp, want)
	}

	clock.Advance(sessionExp.Sub(clock.Now()) - time.Millisecond) // just before exp
	if _, err := ti.VerifySession(sess.GetToken()); err != nil {
		t.Errorf("VerifySession 1ms before expiry = %v, want nil", err)
	}
	clock.Advance(time.Millisecond) // at exp
	_, err = ti.VerifySession(sess.GetToken())
	e := wantCode(t, err, codeTokenExpired)
	if e.Message != "session token expired" {
		t.Errorf("message = %q, want %q", e.Message, "session token expired")
	}
	// An expired token of the wrong kind is still the wrong kind.
	_, err = ti.VerifyRefresh(sess.GetToken())
	wantCode(t, err, codeUnauthenticated)
	// The refresh token outlives the session token.
	if _, err := ti.VerifyRefresh(sess.GetRefreshToken()); err != nil {
		t.Errorf("VerifyRefresh after the session expired = %v, want nil", err)
	}
	clock.Advance(time.Hour)
	_, err = ti.VerifyRefresh(sess.GetRefreshToken())
	wantCode(t, err, codeTokenExpired)
}

func TestTokenRotation(t *testing.T) {
	clock := newTestClock()
	oldSecret := bytes.Repeat([]byte("o"), 40)
	newSecret := bytes.Repeat([]byte("n"), 32)
	oldIssuer := newTestIssuer(t, clock, oldSecret)
	rotated := newTestIssuer(t, clock, newSecret, oldSecret)
	newOnly := newTestIssuer(t, clock, newSecret)

	oldSess, err := oldIssuer.Issue("user-1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.VerifySession(oldSess.GetToken()); err != nil {
		t.Errorf("rotated issuer rejects a session token signed with the previous secret: %v", err)
	}
	if _, err := rotated.VerifyRefresh(oldSess.GetRefreshToken()); err != nil {
		t.Errorf("rotated issuer rejects a refresh token signed with the previous secret: %v", err)
	}
	_, err = newOnly.VerifySession(oldSess.GetToken())
	wantCode(t, err, codeUnauthenticated)

	// New tokens are signed with the current secret only.
	newSess, err := rotated.Issue("user-1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newOnly.VerifySession(newSess.GetToken()); err != nil {
		t.Errorf("token from the rotated issuer does not verify with the new secret: %v", err)
	}
	_, err = oldIssuer.VerifySession(newSess.GetToken())
	wantCode(t, err, codeUnauthenticated)
}

// jwtClaims are the claims as golang-jwt encodes them: the encoding older
// nodes used, and the reference that tokens stay compatible with.
type jwtClaims struct {
	jwt.RegisteredClaims
	Username   string    `json:"username"`
	Kind       TokenKind `json:"kind"`
	Family     string    `json:"fam,omitempty"`
	Generation int64     `json:"gen,omitempty"`
	Epoch      int64     `json:"ep,omitempty"`
}

// signClaims signs arbitrary claims, for forging tokens.
func signClaims(t *testing.T, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenRejected(t *testing.T) {
	clock := newTestClock()
	ti := newTestIssuer(t, clock, testSecret)
	sess, err := ti.Issue("user-1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	good := sess.GetToken()
	parts := strings.Split(good, ".")

	// A payload claiming another user, keeping the original signature.
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	m["sub"] = "user-2"
	forged, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]

	sig := []byte(parts[2])
	sig[len(sig)/2] ^= 1 // flip a bit in the middle: stays valid base64
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)

	valid := func() jwtClaims {
		return jwtClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Subject:   "user-1",
				IssuedAt:  jwt.NewNumericDate(t0),
				ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour)),
				ID:        "3b241101-e2bb-4255-8caf-4136c566a962",
			},
			Username: "alice",
			Kind:     TokenSession,
		}
	}
	noExp, noSub, noJTI, noIat, noKind := valid(), valid(), valid(), valid(), valid()
	noExp.ExpiresAt = nil
	noSub.Subject = ""
	noJTI.ID = ""
	noIat.IssuedAt = nil
	noKind.Kind = ""
	otherSecret := bytes.Repeat([]byte("x"), 32)

	for _, tc := range []struct{ name, token string }{
		{"empty", ""},
		{"garbage", "not a token at all"},
		{"two segments", parts[0] + "." + parts[1]},
		{"four segments", good + ".AAAA"},
		{"bad base64", parts[0] + ".!!!." + parts[2]},
		{"padded base64", parts[0] + "." + parts[1] + "==." + parts[2]},
		{"too long", good + strings.Repeat("A", maxTokenLen)},
		{"tampered payload", tamperedPayload},
		{"tampered signature", tamperedSig},
		{"no signature", parts[0] + "." + parts[1] + "."},
		{"newline in signature", parts[0] + "." + parts[1] + "." + parts[2][:5] + "\n" + parts[2][5:]},
		{"space around", " " + good},
		{"alg none", signClaims(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid())},
		{"HS512 with the right secret", signClaims(t, jwt.SigningMethodHS512, testSecret, valid())},
		{"HS384 with the right secret", signClaims(t, jwt.SigningMethodHS384, testSecret, valid())},
		{"other secret", signClaims(t, jwt.SigningMethodHS256, otherSecret, valid())},
		{"no exp", signClaims(t, jwt.SigningMethodHS256, testSecret, noExp)},
		{"no sub", signClaims(t, jwt.SigningMethodHS256, testSecret, noSub)},
		{"no jti", signClaims(t, jwt.SigningMethodHS256, testSecret, noJTI)},
		{"no iat", signClaims(t, jwt.SigningMethodHS256, testSecret, noIat)},
		{"no kind", signClaims(t, jwt.SigningMethodHS256, testSecret, noKind)},
		{"refresh token", sess.GetRefreshToken()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ti.VerifySession(tc.token)
			e := wantCode(t, err, codeUnauthenticated)
			if e.Message != "invalid session token" {
				t.Errorf("message = %q, want %q", e.Message, "invalid session token")
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("error %q echoes the token", err)
			}
		})
	}
	// The forging helper itself produces accepted tokens.
	if _, err := ti.VerifySession(signClaims(t, jwt.SigningMethodHS256, testSecret, valid())); err != nil {
		t.Errorf("VerifySession(well-formed forged-with-the-right-key token) = %v, want nil", err)
	}
}

// FuzzVerifyToken checks that no input makes verification panic, that
// failures are UNAUTHENTICATED or TOKEN_EXPIRED and never echo the token.
func FuzzVerifyToken(f *testing.F) {
	clock := &testClock{t: t0}
	ti, err := NewTokenIssuer(TokenConfig{Secret: testSecret, Now: clock.Now})
	if err != nil {
		f.Fatal(err)
	}
	sess, err := ti.Issue("user-1", "alice")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sess.GetToken())
	f.Add(sess.GetRefreshToken())
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1c2VyLTEiLCJraW5kIjoic2Vzc2lvbiJ9.")
	f.Add("..")
	f.Add("")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		for _, verify := range []func(string) (Claims, error){ti.VerifySession, ti.VerifyRefresh} {
			c, err := verify(token)
			if err == nil {
				if !tokenAlphabet(token) {
					t.Fatalf("accepted token %q with characters outside base64url", token)
				}
				if c.UserID == "" || c.TokenID == "" || (c.Kind != TokenSession && c.Kind != TokenRefresh) {
					t.Fatalf("accepted token with claims %+v", c)
				}
				continue
			}
			e := wantCodeIn(t, err, codeUnauthenticated, codeTokenExpired)
			if len(token) >= 8 && strings.Contains(e.Message, token) {
				t.Fatalf("message %q echoes the token", e.Message)
			}
		}
	})
}

func wantCodeIn(t *testing.T, err error, codes ...apierr.Code) *apierr.Error {
	t.Helper()
	var e *apierr.Error
	if errors.As(err, &e) && slices.Contains(codes, e.Code) {
		return e
	}
	t.Fatalf("err = %v, want an *apierr.Error with one of codes %v", err, codes)
	return nil
}
