package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/internal/apierr"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

const codeBusy = realtimev1.ErrorCode_ERROR_CODE_BUSY

// waitQueued waits until n password logins hold limiter slots: the
// logins started by the test have passed the limiter and wait for the
// (blocked) hasher.
func waitQueued(t *testing.T, l *loginLimiter, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		got := l.total
		l.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d password logins in progress, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// With the hasher stuck (a slow hash holding its only slot), password
// logins fill the per-address and global caps and the next ones answer
// BUSY at once, while device logins go through.
func TestPasswordLoginCaps(t *testing.T) {
	ctx := context.Background()
	hasher, err := NewHasher(fastParams, 1)
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnvWith(t, Config{PasswordLogins: 3, PasswordLoginsPerIP: 2}, Deps{Hasher: hasher})
	for _, email := range []string{"a@example.com", "b@example.com"} {
		if _, err := env.svc.Authenticate(ctx, emailReq(email, "password", true)); err != nil {
			t.Fatal(err)
		}
	}
	ipA, ipB, ipC := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::3")
	from := func(ip netip.Addr) context.Context { return WithClientIP(ctx, ip) }

	hasher.sem <- struct{}{} // the slow hash
	queued := make(chan error, 3)
	login := func(ip netip.Addr, email string) {
		go func() {
			_, err := env.svc.Authenticate(from(ip), emailReq(email, "password", false))
			queued <- err
		}()
	}
	login(ipA, "a@example.com")
	login(ipA, "a@example.com")
	waitQueued(t, env.svc.passwords, 2)

	busy := func(what string, ctx context.Context, req *apiv1.AuthenticateRequest, msg string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := env.svc.Authenticate(ctx, req)
		e := wantCode(t, err, codeBusy)
		if e.Message != msg {
			t.Errorf("%s: message %q, want %q", what, e.Message, msg)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: answered after %v, want at once", what, d)
		}
	}
	perIP := "too many password logins in progress from your address; retry shortly"
	global := "too many password logins in progress; retry shortly"
	busy("third login from A", from(ipA), emailReq("a@example.com", "password", false), perIP)
	busy("new account from A", from(ipA), emailReq("new@example.com", "password", true), perIP)
	busy("unknown email from A", from(ipA), emailReq("nobody@example.com", "password", false), perIP)

	login(ipB, "b@example.com") // the last global slot
	waitQueued(t, env.svc.passwords, 3)
	busy("login from C", from(ipC), emailReq("b@example.com", "password", false), global)
	busy("login without address", ctx, emailReq("b@example.com", "password", false), global)

	// Device logins do not hash and are not capped.
	if _, err := env.svc.Authenticate(from(ipA), deviceReq("device-while-busy", true)); err != nil {
		t.Errorf("device login while password logins are capped = %v", err)
	}

	<-hasher.sem // the slow hash ends: the queued logins complete
	for range 3 {
		if err := <-queued; err != nil {
			t.Errorf("queued password login = %v", err)
		}
	}
	if _, err := env.svc.Authenticate(from(ipA), emailReq("a@example.com", "password", false)); err != nil {
		t.Errorf("password login after the queue drained = %v", err)
	}
}

func TestPasswordLoginBusyOverHTTP(t *testing.T) {
	hasher, err := NewHasher(fastParams, 1)
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnvWith(t, Config{PasswordLogins: 8, PasswordLoginsPerIP: 1, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
		Deps{Hasher: hasher})
	if _, err := env.svc.Authenticate(context.Background(), emailReq("a@example.com", "password", true)); err != nil {
		t.Fatal(err)
	}
	path, h := HTTPHandler(env.svc)
	mux := http.NewServeMux()
	mux.Handle(path, h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	post := func(forwardedFor string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/taisen.api.v1.AuthService/Authenticate",
			strings.NewReader(`{"email":{"email":"a@example.com","password":"password"}}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", forwardedFor)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	hasher.sem <- struct{}{}
	done := make(chan int, 1)
	go func() {
		res := post("198.51.100.7")
		res.Body.Close()
		done <- res.StatusCode
	}()
	waitQueued(t, env.svc.passwords, 1)
	res := post("198.51.100.7")
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "1" || res.Header.Get(apierr.CodeHeader) != "busy" {
		t.Errorf("second login from one address: %d, Retry-After %q, %s %q; want 429, 1, busy",
			res.StatusCode, res.Header.Get("Retry-After"), apierr.CodeHeader, res.Header.Get(apierr.CodeHeader))
	}
	<-hasher.sem
	if code := <-done; code != http.StatusOK {
		t.Errorf("queued login: status %d, want 200", code)
	}
}

func TestClientIP(t *testing.T) {
	svc := &Service{trustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	untrusting := &Service{}
	for _, tc := range []struct {
		name string
		s    *Service
		peer string
		xff  []string
		want string
	}{
		{"direct", svc, "203.0.113.5:4000", nil, "203.0.113.5"},
		{"header ignored from an untrusted peer", svc, "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"header ignored without trusted proxies", untrusting, "10.0.0.1:4000", []string{"198.51.100.1"}, "10.0.0.1"},
		{"one proxy", svc, "10.0.0.1:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client spoofs the left", svc, "10.0.0.1:4000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"two proxies", svc, "10.0.0.1:4000", []string{"198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"two headers", svc, "10.0.0.1:4000", []string{"198.51.100.1", "10.0.0.2"}, "198.51.100.1"},
		{"only proxies", svc, "10.0.0.1:4000", []string{"10.0.0.3"}, "10.0.0.3"},
		{"garbage", svc, "10.0.0.1:4000", []string{"198.51.100.1, not-an-ip"}, "10.0.0.1"},
		{"ipv6", svc, "[fd00::1]:4000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"v4-mapped peer", svc, "[::ffff:203.0.113.5]:4000", nil, "203.0.113.5"},
		{"no peer", svc, "", nil, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.xff {
				h.Add("X-Forwarded-For", v)
			}
			if got := tc.s.clientIP(tc.peer, h).String(); got != tc.want {
				t.Errorf("clientIP = %s, want %s", got, tc.want)
			}
		})
	}
}
