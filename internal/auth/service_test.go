package auth

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/store"
)

const (
	codeBadRequest         = realtimev1.ErrorCode_ERROR_CODE_BAD_REQUEST
	codeInvalidCredentials = realtimev1.ErrorCode_ERROR_CODE_INVALID_CREDENTIALS
	codeAlreadyExists      = realtimev1.ErrorCode_ERROR_CODE_ALREADY_EXISTS
	codePermissionDenied   = realtimev1.ErrorCode_ERROR_CODE_PERMISSION_DENIED
)

func deviceReq(id string, create bool) *apiv1.AuthenticateRequest {
	return &apiv1.AuthenticateRequest{
		Credential: &apiv1.AuthenticateRequest_Device{Device: &apiv1.DeviceCredential{Id: id}},
		Create:     create,
	}
}

func customReq(id string, create bool) *apiv1.AuthenticateRequest {
	return &apiv1.AuthenticateRequest{
		Credential: &apiv1.AuthenticateRequest_Custom{Custom: &apiv1.CustomCredential{Id: id}},
		Create:     create,
	}
}

func emailReq(email, password string, create bool) *apiv1.AuthenticateRequest {
	return &apiv1.AuthenticateRequest{
		Credential: &apiv1.AuthenticateRequest_Email{Email: &apiv1.EmailCredential{Email: email, Password: password}},
		Create:     create,
	}
}

func withUsername(r *apiv1.AuthenticateRequest, u string) *apiv1.AuthenticateRequest {
	r.Username = u
	return r
}

func TestAuthenticateValidation(t *testing.T) {
	const (
		msgOne      = "exactly one credential (device, custom or email) is required"
		msgDevice   = "device.id must be 10-128 printable ASCII characters"
		msgCustom   = "custom.id must be 6-128 printable ASCII characters"
		msgEmail    = "email.email must be a valid email address"
		msgEmailReq = "email.email is required"
		msgEmailLen = "email.email must be at most 254 bytes"
		msgPassword = "email.password must be 8-256 bytes"
		msgUsername = "username must be 3-64 characters of [A-Za-z0-9_.-]"
	)
	longEmail := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com" // 254 bytes
	for _, tc := range []struct {
		name    string
		req     *apiv1.AuthenticateRequest
		wantMsg string // "" means accepted
	}{
		{"nil request", nil, msgOne},
		{"no credential", &apiv1.AuthenticateRequest{Create: true}, msgOne},
		{"device nil", &apiv1.AuthenticateRequest{Credential: &apiv1.AuthenticateRequest_Device{}}, msgDevice},
		{"device 9", deviceReq("123456789", true), msgDevice},
		{"device 10", deviceReq("1234567890", true), ""},
		{"device 128", deviceReq(strings.Repeat("d", 128), true), ""},
		{"device 129", deviceReq(strings.Repeat("d", 129), true), msgDevice},
		{"device with space and symbols", deviceReq("dev ice-~!{}", true), ""},
		{"device with tab", deviceReq("device\tid12", true), msgDevice},
		{"device with newline", deviceReq("device-id-1\n", true), msgDevice},
		{"device with NUL", deviceReq("device-id-1\x00", true), msgDevice},
		{"device with DEL", deviceReq("device-id-1\x7f", true), msgDevice},
		{"device non-ASCII", deviceReq("device-idé-1", true), msgDevice},
		{"custom 5", customReq("12345", true), msgCustom},
		{"custom 6", customReq("123456", true), ""},
		{"custom 129", customReq(strings.Repeat("c", 129), true), msgCustom},
		{"custom nil", &apiv1.AuthenticateRequest{Credential: &apiv1.AuthenticateRequest_Custom{}}, msgCustom},
		{"email ok", emailReq("ann@example.com", "password", true), ""},
		{"email 254", emailReq(longEmail, "password", true), ""},
		{"email 255", emailReq("a"+longEmail, "password", true), msgEmailLen},
		{"email nil", &apiv1.AuthenticateRequest{Credential: &apiv1.AuthenticateRequest_Email{}}, msgEmailReq},
		{"email empty", emailReq("", "password", true), msgEmailReq},
		{"email no at", emailReq("not-an-email", "password", true), msgEmail},
		{"email no domain", emailReq("ann@", "password", true), msgEmail},
		{"email display name", emailReq("Ann <ann@example.com>", "password", true), msgEmail},
		{"email angle brackets", emailReq("<ann@example.com>", "password", true), msgEmail},
		{"email leading space", emailReq(" ann@example.com", "password", true), msgEmail},
		{"email two ats", emailReq("ann@b@example.com", "password", true), msgEmail},
		{"password 7", emailReq("ann@example.com", "1234567", true), msgPassword},
		{"password 8", emailReq("bob@example.com", "12345678", true), ""},
		{"password 256", emailReq("cat@example.com", strings.Repeat("p", 256), true), ""},
		{"password 257", emailReq("ann@example.com", strings.Repeat("p", 257), true), msgPassword},
		{"password empty", emailReq("ann@example.com", "", true), msgPassword},
		{"username 2", withUsername(deviceReq("device-abc-1", true), "ab"), msgUsername},
		{"username 3", withUsername(deviceReq("device-abc-2", true), "abc"), ""},
		{"username 64", withUsername(deviceReq("device-abc-3", true), strings.Repeat("u", 64)), ""},
		{"username 65", withUsername(deviceReq("device-abc-4", true), strings.Repeat("u", 65)), msgUsername},
		{"username all allowed", withUsername(deviceReq("device-abc-5", true), "Az09_.-"), ""},
		{"username space", withUsername(deviceReq("device-abc-6", true), "bad name"), msgUsername},
		{"username non-ASCII", withUsername(deviceReq("device-abc-7", true), "ünïcode"), msgUsername},
		{"username at", withUsername(deviceReq("device-abc-8", true), "a@b"), msgUsername},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			res, err := env.svc.Authenticate(context.Background(), tc.req)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("Authenticate = %v, want success", err)
				}
				if !res.GetCreated() {
					t.Errorf("Created = false, want true")
				}
				return
			}
			e := wantCode(t, err, codeBadRequest)
			if e.Message != tc.wantMsg {
				t.Errorf("message = %q, want %q", e.Message, tc.wantMsg)
			}
			if n := env.store.accountCount(); n != 0 {
				t.Errorf("%d accounts created by an invalid request", n)
			}
		})
	}
}

func TestAuthenticateDevice(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)

	_, err := env.svc.Authenticate(ctx, deviceReq("device-0001", false))
	e := wantCode(t, err, codeInvalidCredentials)
	if e.Message != "invalid credentials" {
		t.Errorf("message = %q, want %q", e.Message, "invalid credentials")
	}

	res, err := env.svc.Authenticate(ctx, deviceReq("device-0001", true))
	if err != nil {
		t.Fatal(err)
	}
	s := res.GetSession()
	if !res.GetCreated() {
		t.Error("Created = false on first create, want true")
	}
	if !regexp.MustCompile(`^player_[a-z2-7]{10}$`).MatchString(s.GetUsername()) {
		t.Errorf("generated username = %q, want player_ and 10 base32 characters", s.GetUsername())
	}
	id, err := uuid.Parse(s.GetUserId())
	if err != nil {
		t.Fatalf("user id %q: %v", s.GetUserId(), err)
	}
	if id.Version() != 7 || id.Variant() != uuid.RFC4122 {
		t.Errorf("user id %s is version %d variant %v, want a UUIDv7", id, id.Version(), id.Variant())
	}
	if sec, nsec := id.Time().UnixTime(); time.Unix(sec, nsec).UnixMilli() != t0.UnixMilli() {
		t.Errorf("user id time = %v, want the injected clock %v", time.Unix(sec, nsec).UTC(), t0)
	}
	c, err := env.svc.VerifySession(s.GetToken())
	if err != nil || c.UserID != s.GetUserId() || c.Username != s.GetUsername() {
		t.Errorf("VerifySession = %+v, %v; want the new account", c, err)
	}
	if got, want := s.GetTokenExpiresAtMs(), t0.Add(time.Hour).Truncate(time.Second).UnixMilli(); got != want {
		t.Errorf("TokenExpiresAtMs = %d, want %d", got, want)
	}

	for _, create := range []bool{false, true} {
		again, err := env.svc.Authenticate(ctx, deviceReq("device-0001", create))
		if err != nil {
			t.Fatalf("login (create=%v) = %v", create, err)
		}
		if again.GetCreated() {
			t.Errorf("login (create=%v): Created = true, want false", create)
		}
		if got, want := again.GetSession().GetUserId(), s.GetUserId(); got != want {
			t.Errorf("login (create=%v): user id = %s, want %s", create, got, want)
		}
		if again.GetSession().GetToken() == "" || again.GetSession().GetRefreshToken() == "" {
			t.Errorf("login (create=%v): session without tokens", create)
		}
	}
	// A custom id equal to the device id is another credential.
	_, err = env.svc.Authenticate(ctx, customReq("device-0001", false))
	wantCode(t, err, codeInvalidCredentials)
	if n := env.store.accountCount(); n != 1 {
		t.Errorf("accounts = %d, want 1", n)
	}
}

func TestAuthenticateUsername(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	res, err := env.svc.Authenticate(ctx, withUsername(deviceReq("device-0001", true), "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.GetSession().GetUsername(); got != "alice" {
		t.Errorf("username = %q, want alice", got)
	}
	aliceID := res.GetSession().GetUserId()

	_, err = env.svc.Authenticate(ctx, withUsername(customReq("custom-0001", true), "alice"))
	e := wantCode(t, err, codeAlreadyExists)
	if e.Message != "username taken" {
		t.Errorf("message = %q, want %q", e.Message, "username taken")
	}
	// Usernames compare case-sensitively, as in the store.
	if _, err := env.svc.Authenticate(ctx, withUsername(customReq("custom-0001", true), "Alice")); err != nil {
		t.Errorf("create with username Alice = %v, want success", err)
	}

	// An existing account keeps its username.
	again, err := env.svc.Authenticate(ctx, withUsername(deviceReq("device-0001", true), "bob"))
	if err != nil {
		t.Fatal(err)
	}
	if s := again.GetSession(); s.GetUserId() != aliceID || s.GetUsername() != "alice" || again.GetCreated() {
		t.Errorf("login with another username = %s/%s created=%v, want %s/alice created=false", s.GetUserId(), s.GetUsername(), again.GetCreated(), aliceID)
	}
}

func TestAuthenticateGeneratedUsernameCollision(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	if _, err := env.svc.Authenticate(ctx, withUsername(deviceReq("device-0001", true), "player_aaaaaaaaaa")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	names := []string{"player_aaaaaaaaaa", "player_aaaaaaaaaa", "player_bbbbbbbbbb"}
	env.svc.newUsername = func() string {
		mu.Lock()
		defer mu.Unlock()
		n := names[0]
		if len(names) > 1 {
			names = names[1:]
		}
		return n
	}
	res, err := env.svc.Authenticate(ctx, deviceReq("device-0002", true))
	if err != nil {
		t.Fatalf("create with colliding generated usernames = %v, want a retry to succeed", err)
	}
	if got := res.GetSession().GetUsername(); got != "player_bbbbbbbbbb" {
		t.Errorf("username = %q, want the third generated one", got)
	}

	// Every attempt collides: an internal error, not a client error.
	_, err = env.svc.Authenticate(ctx, deviceReq("device-0003", true))
	if err == nil {
		t.Fatal("create with only taken generated usernames succeeded")
	}
	if _, internal := apierr.From(err); !internal || !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("err = %v, want an internal error wrapping store.ErrAlreadyExists", err)
	}
}

func TestAuthenticateEmail(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	res, err := env.svc.Authenticate(ctx, emailReq("Ann.Lee@Example.COM", "s3cret-pass", true))
	if err != nil {
		t.Fatal(err)
	}
	if !res.GetCreated() {
		t.Error("Created = false, want true")
	}
	id := res.GetSession().GetUserId()
	cred := env.store.credential(store.CredentialEmail, "ann.lee@example.com")
	if cred.AccountID != id {
		t.Fatalf("credential for the lower-cased email = %+v, want account %s", cred, id)
	}
	if !strings.HasPrefix(cred.Secret, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(cred.Secret, "s3cret-pass") {
		t.Errorf("stored secret = %q, want an argon2id PHC string", cred.Secret)
	}

	login, err := env.svc.Authenticate(ctx, emailReq("ann.lee@example.com", "s3cret-pass", false))
	if err != nil {
		t.Fatalf("login = %v", err)
	}
	if login.GetCreated() || login.GetSession().GetUserId() != id {
		t.Errorf("login = %s created=%v, want %s created=false", login.GetSession().GetUserId(), login.GetCreated(), id)
	}

	for _, tc := range []struct {
		name string
		req  *apiv1.AuthenticateRequest
	}{
		{"wrong password", emailReq("ann.lee@example.com", "wrong-password", false)},
		{"wrong password, create", emailReq("ann.lee@example.com", "wrong-password", true)},
		{"password of other case", emailReq("ann.lee@example.com", "S3CRET-PASS", false)},
		{"unknown email", emailReq("nobody@example.com", "s3cret-pass", false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.svc.Authenticate(ctx, tc.req)
			e := wantCode(t, err, codeInvalidCredentials)
			if e.Message != "invalid credentials" {
				t.Errorf("message = %q, want %q", e.Message, "invalid credentials")
			}
		})
	}
	if n := env.store.accountCount(); n != 1 {
		t.Errorf("accounts = %d, want 1", n)
	}
}

// An unknown email costs a password verification, like a wrong password:
// with the hasher's only slot taken, both wait for it and fail with ctx's
// error instead of answering at once.
func TestAuthenticateUnknownEmailHashes(t *testing.T) {
	ctx := context.Background()
	hasher, err := NewHasher(fastParams, 1)
	if err != nil {
		t.Fatal(err)
	}
	svc := newTestEnvWith(t, Config{}, Deps{Hasher: hasher}).svc
	if _, err := svc.Authenticate(ctx, emailReq("ann@example.com", "password", true)); err != nil {
		t.Fatal(err)
	}

	hasher.sem <- struct{}{}
	for _, req := range []*apiv1.AuthenticateRequest{
		emailReq("nobody@example.com", "password", false),
		emailReq("ann@example.com", "wrong-password", false),
	} {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		_, err := svc.Authenticate(tctx, req)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Authenticate(%s) with the hasher busy = %v, want it to wait for the hasher", req.GetEmail().GetEmail(), err)
		}
	}
	<-hasher.sem
}

func TestAuthenticateDisabled(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	dev, err := env.svc.Authenticate(ctx, deviceReq("device-0001", true))
	if err != nil {
		t.Fatal(err)
	}
	em, err := env.svc.Authenticate(ctx, emailReq("ann@example.com", "password", true))
	if err != nil {
		t.Fatal(err)
	}
	env.store.setDisabled(dev.GetSession().GetUserId(), true)
	env.store.setDisabled(em.GetSession().GetUserId(), true)

	for _, req := range []*apiv1.AuthenticateRequest{
		deviceReq("device-0001", false),
		deviceReq("device-0001", true),
		emailReq("ann@example.com", "password", false),
	} {
		_, err := env.svc.Authenticate(ctx, req)
		e := wantCode(t, err, codePermissionDenied)
		if e.Message != "account disabled" {
			t.Errorf("message = %q, want %q", e.Message, "account disabled")
		}
	}
	// Without the password, a disabled account looks like any other.
	_, err = env.svc.Authenticate(ctx, emailReq("ann@example.com", "wrong-password", false))
	wantCode(t, err, codeInvalidCredentials)

	env.store.setDisabled(dev.GetSession().GetUserId(), false)
	if _, err := env.svc.Authenticate(ctx, deviceReq("device-0001", false)); err != nil {
		t.Errorf("login after re-enabling = %v", err)
	}
}

// Concurrent creates of one credential make one account; the losers of
// the race log in to it.
func TestAuthenticateConcurrentCreate(t *testing.T) {
	const n = 8
	for _, tc := range []struct {
		name string
		req  func() *apiv1.AuthenticateRequest
	}{
		{"device", func() *apiv1.AuthenticateRequest { return deviceReq("device-shared", true) }},
		{"email", func() *apiv1.AuthenticateRequest { return emailReq("race@example.com", "password", true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			// Hold every CreateAccount until all n requests have missed the
			// lookup, so the race path is taken every run.
			var arrived sync.WaitGroup
			arrived.Add(n)
			env.store.mu.Lock()
			env.store.beforeCreate = func() {
				arrived.Done()
				arrived.Wait()
			}
			env.store.mu.Unlock()
			type result struct {
				res *apiv1.AuthenticateResponse
				err error
			}
			results := make(chan result, n)
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					res, err := env.svc.Authenticate(context.Background(), tc.req())
					results <- result{res, err}
				})
			}
			wg.Wait()
			close(results)

			created, ids := 0, map[string]bool{}
			for r := range results {
				if r.err != nil {
					t.Errorf("Authenticate = %v", r.err)
					continue
				}
				if r.res.GetCreated() {
					created++
				}
				ids[r.res.GetSession().GetUserId()] = true
			}
			if created != 1 || len(ids) != 1 {
				t.Errorf("created = %d, distinct user ids = %d; want 1, 1", created, len(ids))
			}
			if got := env.store.accountCount(); got != 1 {
				t.Errorf("accounts = %d, want 1", got)
			}
		})
	}
}

func TestAuthenticateStoreErrors(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("disk on fire")
	for _, method := range []string{"CredentialAccount", "CreateAccount"} {
		t.Run(method, func(t *testing.T) {
			env := newTestEnv(t)
			if _, err := env.svc.Authenticate(ctx, deviceReq("device-0001", true)); err != nil {
				t.Fatal(err)
			}
			env.store.fail(method, boom)
			// Login reaches CredentialAccount; create reaches
			// CredentialAccount and CreateAccount.
			req := deviceReq("device-0001", false)
			if method == "CreateAccount" {
				req = deviceReq("device-0002", true)
			}
			_, err := env.svc.Authenticate(ctx, req)
			if !errors.Is(err, boom) {
				t.Fatalf("Authenticate = %v, want it to wrap the store error", err)
			}
			if _, internal := apierr.From(err); !internal {
				t.Errorf("err = %v is a client error, want an internal one", err)
			}
			if !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("err = %q, want the auth: prefix", err)
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	res, err := env.svc.Authenticate(ctx, deviceReq("device-0001", true))
	if err != nil {
		t.Fatal(err)
	}
	first := res.GetSession()

	env.clock.Advance(2 * time.Hour) // the session token has expired
	_, err = env.svc.VerifySession(first.GetToken())
	wantCode(t, err, codeTokenExpired)

	env.store.rename(first.GetUserId(), "renamed")
	ref, err := env.svc.Refresh(ctx, &apiv1.RefreshRequest{RefreshToken: first.GetRefreshToken()})
	if err != nil {
		t.Fatalf("Refresh = %v", err)
	}
	s := ref.GetSession()
	if s.GetUserId() != first.GetUserId() || s.GetUsername() != "renamed" {
		t.Errorf("refreshed session = %s/%s, want %s/renamed", s.GetUserId(), s.GetUsername(), first.GetUserId())
	}
	if s.GetToken() == first.GetToken() || s.GetRefreshToken() == first.GetRefreshToken() {
		t.Error("Refresh returned the old tokens")
	}
	if got, want := s.GetTokenExpiresAtMs(), env.clock.Now().Add(time.Hour).Truncate(time.Second).UnixMilli(); got != want {
		t.Errorf("TokenExpiresAtMs = %d, want %d", got, want)
	}
	if c, err := env.svc.VerifySession(s.GetToken()); err != nil || c.Username != "renamed" {
		t.Errorf("VerifySession(refreshed) = %+v, %v", c, err)
	}

	for _, tc := range []struct {
		name  string
		token string
		want  apierr.Code
		msg   string
	}{
		{"empty", "", codeBadRequest, "refresh_token is required"},
		{"garbage", "garbage", codeUnauthenticated, "invalid refresh token"},
		{"session token", s.GetToken(), codeUnauthenticated, "invalid refresh token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := env.svc.Refresh(ctx, &apiv1.RefreshRequest{RefreshToken: tc.token})
			e := wantCode(t, err, tc.want)
			if e.Message != tc.msg {
				t.Errorf("message = %q, want %q", e.Message, tc.msg)
			}
		})
	}

	t.Run("disabled", func(t *testing.T) {
		env.store.setDisabled(first.GetUserId(), true)
		defer env.store.setDisabled(first.GetUserId(), false)
		_, err := env.svc.Refresh(ctx, &apiv1.RefreshRequest{RefreshToken: s.GetRefreshToken()})
		wantCode(t, err, codePermissionDenied)
	})
	t.Run("store error", func(t *testing.T) {
		env := newTestEnv(t)
		res, err := env.svc.Authenticate(ctx, deviceReq("device-0001", true))
		if err != nil {
			t.Fatal(err)
		}
		boom := errors.New("disk on fire")
		env.store.fail("Account", boom)
		_, err = env.svc.Refresh(ctx, &apiv1.RefreshRequest{RefreshToken: res.GetSession().GetRefreshToken()})
		if _, internal := apierr.From(err); !internal || !errors.Is(err, boom) {
			t.Errorf("Refresh = %v, want an internal error wrapping the store error", err)
		}
	})
	t.Run("account gone", func(t *testing.T) {
		env.store.deleteAccount(first.GetUserId())
		_, err := env.svc.Refresh(ctx, &apiv1.RefreshRequest{RefreshToken: s.GetRefreshToken()})
		e := wantCode(t, err, codeUnauthenticated)
		if e.Message != "account no longer exists" {
			t.Errorf("message = %q, want %q", e.Message, "account no longer exists")
		}
	})
	t.Run("expired", func(t *testing.T) {
		env.clock.Advance(DefaultRefreshTTL)
		_, err := env.svc.Refresh(ctx, &apiv1.RefreshRequest{RefreshToken: s.GetRefreshToken()})
		e := wantCode(t, err, codeTokenExpired)
		if e.Message != "refresh token expired" {
			t.Errorf("message = %q, want %q", e.Message, "refresh token expired")
		}
	})
}

func TestNewErrors(t *testing.T) {
	env := newTestEnv(t)
	full := Deps{Accounts: env.store, Tokens: env.tokens, Hasher: env.hasher}
	for _, tc := range []struct {
		name    string
		cfg     Config
		deps    func(Deps) Deps
		wantErr string
	}{
		{"ok", Config{}, func(d Deps) Deps { return d }, ""},
		{"custom prefix", Config{UsernamePrefix: "guest-", UsernameAttempts: 2}, func(d Deps) Deps { return d }, ""},
		{"no accounts", Config{}, func(d Deps) Deps { d.Accounts = nil; return d }, "auth: new service: Deps.Accounts is required"},
		{"no tokens", Config{}, func(d Deps) Deps { d.Tokens = nil; return d }, "auth: new service: Deps.Tokens is required"},
		{"no hasher", Config{}, func(d Deps) Deps { d.Hasher = nil; return d }, "auth: new service: Deps.Hasher is required"},
		{"negative attempts", Config{UsernameAttempts: -1}, func(d Deps) Deps { return d }, "auth: new service: UsernameAttempts must not be negative"},
		{"bad prefix", Config{UsernamePrefix: "player "}, func(d Deps) Deps { return d }, `auth: new service: UsernamePrefix "player " makes invalid usernames: bad_request: username must be 3-64 characters of [A-Za-z0-9_.-]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, tc.deps(full))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.wantErr {
				t.Errorf("New error = %q, want %q", got, tc.wantErr)
			}
		})
	}
}
