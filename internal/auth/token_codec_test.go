package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
)

// TestTokenEncodingMatchesJWT checks that a token is byte for byte the one
// golang-jwt signs for the same claims, which is what older nodes issued
// and verify: a cluster can mix both.
func TestTokenEncodingMatchesJWT(t *testing.T) {
	clock := newTestClock()
	ti := newTestIssuer(t, clock, testSecret)
	now := clock.Now()
	for _, tc := range []struct {
		name string
		g    Grant
	}{
		{"login", Grant{UserID: "0195a4c2-7e3b-7d41-9a52-6f0e1c2d3b4a", Username: "player_abcdefghij", Family: "9b2f6f7e-3c1d-4e58-a0f1-2b3c4d5e6f70"}},
		{"refreshed, revoked once", Grant{UserID: "u1", Username: "alice", Family: "fam", Generation: 7, Epoch: 2}},
		{"no family (older tokens)", Grant{UserID: "u1", Username: "alice"}},
		{"empty username", Grant{UserID: "u1", Family: "f"}},
		{"escaped characters", Grant{UserID: `a"b\c`, Username: "<b>&\u2028\x01\x7f", Family: "f"}},
		{"non-ASCII and invalid UTF-8", Grant{UserID: "ユーザー", Username: "é\xff", Family: "f"}},
		{"large numbers", Grant{UserID: "u", Username: "u", Family: "f", Generation: 1 << 62, Epoch: 1<<63 - 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kind := range []TokenKind{TokenSession, TokenRefresh} {
				const jti = "3b241101-e2bb-4255-8caf-4136c566a962"
				exp := now.Add(time.Hour)
				got := ti.sign(tc.g, kind, jti, now.Unix(), exp.Unix())
				want := signClaims(t, jwt.SigningMethodHS256, testSecret, jwtClaims{
					RegisteredClaims: jwt.RegisteredClaims{
						Subject:   tc.g.UserID,
						IssuedAt:  jwt.NewNumericDate(now),
						ExpiresAt: jwt.NewNumericDate(exp),
						ID:        jti,
					},
					Username: tc.g.Username, Kind: kind, Family: tc.g.Family, Generation: tc.g.Generation, Epoch: tc.g.Epoch,
				})
				if got != want {
					t.Fatalf("%s token\n got %s\nwant %s", kind, payloadOf(t, got), payloadOf(t, want))
				}
			}
		})
	}
}

// TestTokenVerifiesAsJWT checks that issued tokens verify with golang-jwt
// configured as older nodes configured it, with the same claims.
func TestTokenVerifiesAsJWT(t *testing.T) {
	clock := newTestClock()
	ti := newTestIssuer(t, clock, testSecret)
	sess, err := ti.IssueGrant(Grant{UserID: "u1", Username: "alice", Family: NewFamily(), Generation: 3, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithStrictDecoding(), jwt.WithTimeFunc(clock.Now))
	for _, token := range []string{sess.GetToken(), sess.GetRefreshToken()} {
		var jc jwtClaims
		if _, err := p.ParseWithClaims(token, &jc, func(*jwt.Token) (any, error) { return testSecret, nil }); err != nil {
			t.Fatalf("golang-jwt rejects an issued token: %v", err)
		}
		c, err := ti.verify(token, jc.Kind)
		if err != nil {
			t.Fatal(err)
		}
		if c.UserID != jc.Subject || c.Username != jc.Username || c.TokenID != jc.ID || c.Family != jc.Family ||
			c.Generation != jc.Generation || c.Epoch != jc.Epoch || !c.IssuedAt.Equal(jc.IssuedAt.Time) || !c.ExpiresAt.Equal(jc.ExpiresAt.Time) {
			t.Errorf("claims %+v, golang-jwt decodes %+v", c, jc)
		}
	}
}

func payloadOf(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return token
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return token
	}
	return string(b) + " sig " + parts[2]
}

func TestDecodeClaims(t *testing.T) {
	for _, tc := range []struct {
		name, payload string
		want          wireClaims
		wantErr       string
	}{
		{name: "all claims", payload: `{"sub":"u","exp":20,"iat":10,"nbf":5,"jti":"j","username":"al","kind":"session","fam":"f","gen":2,"ep":3}`,
			want: wireClaims{Subject: "u", ExpiresAt: 20, IssuedAt: 10, NotBefore: 5, TokenID: "j", Username: "al", Kind: TokenSession, Family: "f", Generation: 2, Epoch: 3, present: claimExp | claimIat | claimNbf}},
		{name: "empty object", payload: ` { } `},
		{name: "spaces and unknown claims of every type", payload: "{ \"iss\" : \"x\",\n\"aud\":[\"a\",{\"b\":[1,-2.5e+3,true,false,null]}],\t\"sub\" :\"u\", \"x\":{}, \"y\":[] ,\"kind\":\"refresh\"}\r\n",
			want: wireClaims{Subject: "u", Kind: TokenRefresh}},
		{name: "escapes", payload: `{"sub":"a\"b\\c\u00e9\ud83d\ude00","username":"\u003cb\u003e","kind":"x\/y"}`,
			want: wireClaims{Subject: "a\"b\\cé😀", Username: "<b>", Kind: "x/y"}},
		{name: "escaped member name", payload: `{"s\u0075b":"u"}`, want: wireClaims{Subject: "u"}},
		{name: "invalid UTF-8 becomes U+FFFD", payload: "{\"username\":\"a\xffb\"}", want: wireClaims{Username: "a\ufffdb"}},
		{name: "null leaves a claim unset", payload: `{"sub":null,"exp":null,"kind":null}`},
		{name: "last duplicate wins", payload: `{"sub":"a","sub":"b","exp":1,"exp":2}`, want: wireClaims{Subject: "b", ExpiresAt: 2, present: claimExp}},
		{name: "negative and zero", payload: `{"gen":-1,"ep":-0}`, want: wireClaims{Generation: -1}},
		{name: "not an object", payload: `["sub"]`, wantErr: "payload is not a JSON object"},
		{name: "empty", payload: ``, wantErr: "payload is not a JSON object"},
		{name: "trailing data", payload: `{}x`, wantErr: "data after the JSON object"},
		{name: "trailing comma", payload: `{"sub":"u",}`, wantErr: "want a string"},
		{name: "missing colon", payload: `{"sub" "u"}`, wantErr: "missing ':'"},
		{name: "unterminated", payload: `{"sub":"u`, wantErr: "unterminated string"},
		{name: "control character", payload: "{\"sub\":\"a\x01\"}", wantErr: "control character in string"},
		{name: "bad escape", payload: `{"sub":"\x"}`, wantErr: "bad escape"},
		{name: "bad unicode escape", payload: `{"sub":"\u12g4"}`, wantErr: "bad \\u escape"},
		{name: "string expiry", payload: `{"exp":"20"}`, wantErr: "want a number"},
		{name: "fractional expiry", payload: `{"exp":20.5}`, wantErr: "want an integer"},
		{name: "exponent expiry", payload: `{"exp":2e1}`, wantErr: "want an integer"},
		{name: "leading zero", payload: `{"exp":020}`, wantErr: "missing ',' or '}'"},
		{name: "overflow", payload: `{"ep":9223372036854775808}`, wantErr: "want an integer"},
		{name: "number subject", payload: `{"sub":5}`, wantErr: "want a string"},
		{name: "object kind", payload: `{"kind":{}}`, wantErr: "want a string"},
		{name: "bad unknown value", payload: `{"x":tru}`, wantErr: "want a JSON value"},
		{name: "unclosed unknown array", payload: `{"x":[1,2}`, wantErr: "missing ',' or closing bracket"},
		{name: "too deep", payload: `{"x":` + strings.Repeat("[", maxJSONDepth+2) + strings.Repeat("]", maxJSONDepth+2) + `}`, wantErr: "nested too deep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeClaims([]byte(tc.payload))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("decodeClaims(%q) = %+v, %v; want an error containing %q", tc.payload, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeClaims(%q) = %v", tc.payload, err)
			}
			if got != tc.want {
				t.Errorf("decodeClaims(%q)\n got %+v\nwant %+v", tc.payload, got, tc.want)
			}
		})
	}
}

// TestVerifyHonoursNotBefore checks a signed token with an nbf in the
// future: none of ours has one, but golang-jwt refused such tokens too.
func TestVerifyHonoursNotBefore(t *testing.T) {
	clock := newTestClock()
	ti := newTestIssuer(t, clock, testSecret)
	c := jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: "u", ID: "j", IssuedAt: jwt.NewNumericDate(t0), ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour)),
			NotBefore: jwt.NewNumericDate(t0.Add(time.Minute)),
		},
		Kind: TokenSession,
	}
	token := signClaims(t, jwt.SigningMethodHS256, testSecret, c)
	_, err := ti.VerifySession(token)
	wantCode(t, err, codeUnauthenticated)
	clock.Advance(time.Minute)
	if _, err := ti.VerifySession(token); err != nil {
		t.Errorf("VerifySession at nbf = %v, want nil", err)
	}
}

// FuzzDecodeClaims checks decodeClaims against encoding/json: whatever it
// accepts is valid JSON, and every claim it decodes is what encoding/json
// finds under that exact name.
func FuzzDecodeClaims(f *testing.F) {
	f.Add([]byte(`{"sub":"u","exp":20,"iat":10,"jti":"j","username":"al","kind":"session","fam":"f","gen":2,"ep":3}`))
	f.Add([]byte(`{"aud":["a",{"b":[1,-2.5e+3,true,false,null]}],"sub":"a\"\u00e9","nbf":null}`))
	f.Add([]byte("{\"username\":\"a\xffb\",\"s\\u0075b\":\"x\"}"))
	f.Add([]byte(`{"exp":1e3,"gen":-0}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := decodeClaims(payload)
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatalf("decodeClaims accepted %q, which encoding/json refuses: %v", payload, err)
		}
		str := func(name, got string) {
			raw, ok := m[name]
			if !ok || bytes.Equal(raw, []byte("null")) {
				if got != "" {
					t.Fatalf("%q: %s = %q, want unset", payload, name, got)
				}
				return
			}
			var want string
			if err := json.Unmarshal(raw, &want); err != nil || got != want {
				t.Fatalf("%q: %s = %q, encoding/json: %q (%v)", payload, name, got, want, err)
			}
		}
		// present is nil for the claims without a presence bit.
		num := func(name string, got int64, present *bool) {
			raw, ok := m[name]
			if !ok || bytes.Equal(raw, []byte("null")) {
				if got != 0 || present != nil && *present {
					t.Fatalf("%q: %s = %d (present %v), want unset", payload, name, got, present)
				}
				return
			}
			var want int64
			if err := json.Unmarshal(raw, &want); err != nil || got != want || present != nil && !*present {
				t.Fatalf("%q: %s = %d, encoding/json: %d (%v)", payload, name, got, want, err)
			}
		}
		str("sub", c.Subject)
		str("username", c.Username)
		str("kind", string(c.Kind))
		str("jti", c.TokenID)
		str("fam", c.Family)
		has := func(s claimSet) *bool { b := c.has(s); return &b }
		num("exp", c.ExpiresAt, has(claimExp))
		num("iat", c.IssuedAt, has(claimIat))
		num("nbf", c.NotBefore, has(claimNbf))
		num("gen", c.Generation, nil)
		num("ep", c.Epoch, nil)
	})
}

// TestWarnOtherSecret checks that a node refusing tokens signed with
// another secret says why, at most once per OtherSecretWarnEvery, and
// stays quiet about tokens that are merely malformed.
func TestWarnOtherSecret(t *testing.T) {
	env := newTestEnv(t)
	logs := &syncBuffer{}
	env.svc.log = slog.New(slog.NewTextHandler(logs, nil))
	otherNode := newTestIssuer(t, env.clock, bytes.Repeat([]byte("o"), MinSecretLen))
	foreign, err := otherNode.Issue("user-1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	warnings := func() int { return strings.Count(logs.String(), "different token secret") }

	// Malformed tokens, malformed signatures and other algorithms are not
	// another node's.
	parts := strings.Split(foreign.GetToken(), ".")
	for _, token := range []string{"", "a.b.c", parts[0] + "." + parts[1] + ".", parts[0] + "." + parts[1] + "." + parts[2][:20],
		signClaims(t, jwt.SigningMethodHS512, testSecret, jwtClaims{Kind: TokenSession})} {
		_, err := env.svc.VerifySession(token)
		wantCode(t, err, codeUnauthenticated)
	}
	if n := warnings(); n != 0 {
		t.Fatalf("%d warnings after malformed tokens, want 0:\n%s", n, logs)
	}

	_, err = env.svc.VerifySession(foreign.GetToken())
	wantCode(t, err, codeUnauthenticated)
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings after a foreign session token, want 1:\n%s", n, logs)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "TAISEN_TOKEN_SECRET") || !strings.Contains(out, "kind=session") {
		t.Errorf("warning does not name the level, the setting and the token kind:\n%s", out)
	}
	// Within the minute: refused, not logged again.
	_, err = env.svc.Refresh(context.Background(), &apiv1.RefreshRequest{RefreshToken: foreign.GetRefreshToken()})
	wantCode(t, err, codeUnauthenticated)
	env.clock.Advance(OtherSecretWarnEvery - time.Second)
	_, err = env.svc.VerifySession(foreign.GetToken())
	wantCode(t, err, codeUnauthenticated)
	if n := warnings(); n != 1 {
		t.Fatalf("%d warnings within %v, want 1:\n%s", n, OtherSecretWarnEvery, logs)
	}
	// A minute after the first: logged again, with the count refused since.
	env.clock.Advance(time.Second)
	_, err = env.svc.Refresh(context.Background(), &apiv1.RefreshRequest{RefreshToken: foreign.GetRefreshToken()})
	wantCode(t, err, codeUnauthenticated)
	if n := warnings(); n != 2 {
		t.Fatalf("%d warnings after %v, want 2:\n%s", n, OtherSecretWarnEvery, logs)
	}
	if out := logs.String(); !strings.Contains(out, "kind=refresh refused=3") {
		t.Errorf("second warning does not count the 3 tokens refused since the first:\n%s", out)
	}
}
