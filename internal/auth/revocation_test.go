package auth

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/bus"
	"github.com/taisen-dev/taisen/internal/bus/natsbus"
)

const codeUnavailable = realtimev1.ErrorCode_ERROR_CODE_UNAVAILABLE

// learnDeadline bounds how long a node may take to learn a revocation
// made elsewhere; tests poll the observable result until then.
const learnDeadline = 10 * time.Second

// eventually polls cond until it returns nil or learnDeadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(learnDeadline)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after %v", what, err, learnDeadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// refused returns nil when VerifySession refuses token with code want.
func refused(s *Service, token string, want apierr.Code) func() error {
	return func() error {
		_, err := s.VerifySession(token)
		var e *apierr.Error
		if !errors.As(err, &e) || e.Code != want {
			return errors.New("VerifySession = " + errString(err) + ", want " + apierr.CodeName(want))
		}
		return nil
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

func refresh(t *testing.T, s *Service, sess *apiv1.Session) (*apiv1.Session, error) {
	t.Helper()
	res, err := s.Refresh(context.Background(), &apiv1.RefreshRequest{RefreshToken: sess.GetRefreshToken()})
	return res.GetSession(), err
}

func TestRefreshChainReuseRevokesChain(t *testing.T) {
	ctx := context.Background()
	var kicked []string
	var mu sync.Mutex
	env := newTestEnvWith(t, Config{}, Deps{OnRevoke: func(_ context.Context, id string) {
		mu.Lock()
		defer mu.Unlock()
		kicked = append(kicked, id)
	}})
	login, err := env.svc.Authenticate(ctx, deviceReq("device-chain-1", true))
	if err != nil {
		t.Fatal(err)
	}
	other, err := env.svc.Authenticate(ctx, deviceReq("device-chain-1", false))
	if err != nil {
		t.Fatal(err)
	}

	// Each refresh consumes its token and issues the next of the chain.
	chain := []*apiv1.Session{login.GetSession()}
	for range 3 {
		next, err := refresh(t, env.svc, chain[len(chain)-1])
		if err != nil {
			t.Fatalf("Refresh of the chain's current token = %v", err)
		}
		chain = append(chain, next)
	}
	for i, s := range chain {
		if _, err := env.svc.VerifySession(s.GetToken()); err != nil {
			t.Fatalf("VerifySession(chain[%d]) before reuse = %v", i, err)
		}
	}

	// Presenting an used token again revokes the chain.
	_, err = refresh(t, env.svc, chain[1])
	e := wantCode(t, err, codeUnauthenticated)
	if want := "refresh token already used; every session of this login is revoked, authenticate again"; e.Message != want {
		t.Errorf("reuse message = %q, want %q", e.Message, want)
	}
	for i, s := range chain {
		e := wantCode(t, func() error { _, err := env.svc.VerifySession(s.GetToken()); return err }(), codeUnauthenticated)
		if e.Message != "session revoked" {
			t.Errorf("VerifySession(chain[%d]) after reuse: message %q, want %q", i, e.Message, "session revoked")
		}
	}
	// The newest refresh token, never used, is dead too.
	_, err = refresh(t, env.svc, chain[len(chain)-1])
	e = wantCode(t, err, codeUnauthenticated)
	if e.Message != "refresh token revoked; authenticate again" {
		t.Errorf("refresh of the chain's last token after reuse: message %q", e.Message)
	}
	mu.Lock()
	if !slices.Equal(kicked, []string{login.GetSession().GetUserId()}) {
		t.Errorf("OnRevoke calls = %v, want one for %s", kicked, login.GetSession().GetUserId())
	}
	mu.Unlock()

	// Another login of the same account is another chain: untouched.
	if _, err := env.svc.VerifySession(other.GetSession().GetToken()); err != nil {
		t.Errorf("VerifySession(other login) = %v", err)
	}
	if _, err := refresh(t, env.svc, other.GetSession()); err != nil {
		t.Errorf("Refresh(other login) = %v", err)
	}

	// A fresh node loading from the store knows the chain is revoked.
	fresh, err := New(Config{}, Deps{Accounts: env.store, Tokens: env.tokens, Hasher: env.hasher, Now: env.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.VerifySession(chain[0].GetToken()); !errors.Is(err, apierr.New(codeUnavailable, "")) {
		t.Errorf("VerifySession before Start = %v, want unavailable", err)
	}
	if err := fresh.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := refused(fresh, chain[2].GetToken(), codeUnauthenticated)(); err != nil {
		t.Errorf("fresh node: %v", err)
	}
}

func TestRevokeSessions(t *testing.T) {
	ctx := context.Background()
	kicks := make(chan string, 4)
	env := newTestEnvWith(t, Config{}, Deps{OnRevoke: func(_ context.Context, id string) { kicks <- id }})
	res, err := env.svc.Authenticate(ctx, deviceReq("device-revoke-1", true))
	if err != nil {
		t.Fatal(err)
	}
	old := res.GetSession()
	bystander, err := env.svc.Authenticate(ctx, deviceReq("device-revoke-2", true))
	if err != nil {
		t.Fatal(err)
	}

	if err := env.svc.RevokeSessions(ctx, old.GetUserId()); err != nil {
		t.Fatalf("RevokeSessions = %v", err)
	}
	if got := <-kicks; got != old.GetUserId() {
		t.Errorf("OnRevoke(%s), want %s", got, old.GetUserId())
	}
	if err := refused(env.svc, old.GetToken(), codeUnauthenticated)(); err != nil {
		t.Errorf("old session token: %v", err)
	}
	_, err = refresh(t, env.svc, old)
	wantCode(t, err, codeUnauthenticated)
	if _, err := env.svc.VerifySession(bystander.GetSession().GetToken()); err != nil {
		t.Errorf("another user's session = %v", err)
	}

	// The user can log in again; the new session works and refreshes.
	res, err = env.svc.Authenticate(ctx, deviceReq("device-revoke-1", false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.VerifySession(res.GetSession().GetToken()); err != nil {
		t.Errorf("session after revocation = %v", err)
	}
	next, err := refresh(t, env.svc, res.GetSession())
	if err != nil {
		t.Fatalf("refresh after revocation = %v", err)
	}
	if _, err := env.svc.VerifySession(next.GetToken()); err != nil {
		t.Errorf("refreshed session after revocation = %v", err)
	}

	for _, tc := range []struct {
		id   string
		want apierr.Code
	}{{"", codeBadRequest}, {"0195a4c2-7e3b-7d41-9a52-6f0e1c2d3b4a", realtimev1.ErrorCode_ERROR_CODE_NOT_FOUND}} {
		wantCode(t, env.svc.RevokeSessions(ctx, tc.id), tc.want)
		wantCode(t, env.svc.SetDisabled(ctx, tc.id, true), tc.want)
	}
}

func TestDisableAccount(t *testing.T) {
	ctx := context.Background()
	kicks := make(chan string, 4)
	env := newTestEnvWith(t, Config{}, Deps{OnRevoke: func(_ context.Context, id string) { kicks <- id }})
	res, err := env.svc.Authenticate(ctx, deviceReq("device-disable-1", true))
	if err != nil {
		t.Fatal(err)
	}
	sess := res.GetSession()
	if err := env.svc.SetDisabled(ctx, sess.GetUserId(), true); err != nil {
		t.Fatal(err)
	}
	if got := <-kicks; got != sess.GetUserId() {
		t.Errorf("OnRevoke(%s), want %s", got, sess.GetUserId())
	}
	if err := refused(env.svc, sess.GetToken(), codePermissionDenied)(); err != nil {
		t.Error(err)
	}
	_, err = refresh(t, env.svc, sess)
	wantCode(t, err, codePermissionDenied)
	_, err = env.svc.Authenticate(ctx, deviceReq("device-disable-1", false))
	wantCode(t, err, codePermissionDenied)

	// Enabling lets the still-valid token in again, without a kick.
	if err := env.svc.SetDisabled(ctx, sess.GetUserId(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := env.svc.VerifySession(sess.GetToken()); err != nil {
		t.Errorf("VerifySession after enabling = %v", err)
	}
	select {
	case id := <-kicks:
		t.Errorf("enabling kicked %s", id)
	default:
	}
}

// A change made straight in the store (another node without a bus, an
// operator's SQL) reaches the cache by the periodic reload.
func TestRevocationSyncFromStore(t *testing.T) {
	ctx := context.Background()
	env := newTestEnvWith(t, Config{RevocationSync: 20 * time.Millisecond}, Deps{})
	var sessions []*apiv1.Session
	for _, dev := range []string{"device-sync-disabled", "device-sync-deleted", "device-sync-revoked"} {
		res, err := env.svc.Authenticate(ctx, deviceReq(dev, true))
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, res.GetSession())
	}
	env.store.setDisabled(sessions[0].GetUserId(), true)
	env.store.deleteAccount(sessions[1].GetUserId())
	if _, err := env.store.RevokeSessions(ctx, sessions[2].GetUserId()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "disabled account", refused(env.svc, sessions[0].GetToken(), codePermissionDenied))
	eventually(t, "deleted account", refused(env.svc, sessions[1].GetToken(), codeUnauthenticated))
	eventually(t, "revoked sessions", refused(env.svc, sessions[2].GetToken(), codeUnauthenticated))

	env.store.setDisabled(sessions[0].GetUserId(), false)
	eventually(t, "re-enabled account", func() error {
		_, err := env.svc.VerifySession(sessions[0].GetToken())
		return err
	})
}

// Two nodes (two Services) sharing one store and one NATS learn each
// other's revocations through the bus, long before the periodic reload.
func TestRevocationAcrossNodes(t *testing.T) {
	ctx := context.Background()
	srv, err := natsbus.StartServer(ctx, natsbus.ServerConfig{StoreDir: filepath.Join(t.TempDir(), "nats")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	connect := func(name string) bus.Bus {
		b, err := natsbus.Connect(ctx, natsbus.Config{Server: srv, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	// Hours between reloads: only the bus can carry the news in time.
	cfg := Config{RevocationSync: time.Hour}
	a := newTestEnvWith(t, cfg, Deps{Bus: connect("node-a")})
	b, err := New(cfg, Deps{Accounts: a.store, Tokens: a.tokens, Hasher: a.hasher, Now: a.clock.Now, Bus: connect("node-b")})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	login := func(svc *Service, dev string) *apiv1.Session {
		res, err := svc.Authenticate(ctx, deviceReq(dev, true))
		if err != nil {
			t.Fatal(err)
		}
		return res.GetSession()
	}
	// Revoked on A, refused on B.
	s1 := login(a.svc, "device-nodes-1")
	if _, err := b.VerifySession(s1.GetToken()); err != nil {
		t.Fatalf("B: VerifySession before revocation = %v", err)
	}
	if err := a.svc.RevokeSessions(ctx, s1.GetUserId()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B learns A's revocation", refused(b, s1.GetToken(), codeUnauthenticated))

	// Disabled on B, refused on A; enabled on B, accepted on A.
	s2 := login(b, "device-nodes-2")
	if err := b.SetDisabled(ctx, s2.GetUserId(), true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A learns B's disable", refused(a.svc, s2.GetToken(), codePermissionDenied))
	if err := b.SetDisabled(ctx, s2.GetUserId(), false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A learns B's enable", func() error { _, err := a.svc.VerifySession(s2.GetToken()); return err })

	// A reused refresh token detected on A revokes the chain on B.
	s3 := login(a.svc, "device-nodes-3")
	next, err := refresh(t, a.svc, s3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := refresh(t, b, s3); err == nil {
		t.Fatal("B accepted a refresh token A had consumed")
	}
	eventually(t, "A learns B's reuse detection", refused(a.svc, next.GetToken(), codeUnauthenticated))
}

// VerifySession reads no store: it keeps answering from the cache while
// the store is unreachable.
func TestVerifySessionReadsNoStore(t *testing.T) {
	ctx := context.Background()
	env := newTestEnv(t)
	res, err := env.svc.Authenticate(ctx, deviceReq("device-nostore-1", true))
	if err != nil {
		t.Fatal(err)
	}
	if err := env.store.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.Account(ctx, res.GetSession().GetUserId()); err == nil {
		t.Fatal("store still answers after Close")
	}
	for range 3 {
		if _, err := env.svc.VerifySession(res.GetSession().GetToken()); err != nil {
			t.Fatalf("VerifySession with the store closed = %v", err)
		}
	}
}

func TestRefreshTokenWithoutFamily(t *testing.T) {
	env := newTestEnv(t)
	res, err := env.svc.Authenticate(context.Background(), deviceReq("device-nofam-1", true))
	if err != nil {
		t.Fatal(err)
	}
	// A token as issued before families existed: same secret, no fam.
	now := env.clock.Now()
	old := env.tokens.sign(Grant{UserID: res.GetSession().GetUserId(), Username: "x"}, TokenRefresh,
		NewFamily(), now.Unix(), now.Add(time.Hour).Unix())
	_, err = env.svc.Refresh(context.Background(), &apiv1.RefreshRequest{RefreshToken: old})
	e := wantCode(t, err, codeUnauthenticated)
	if e.Message != "refresh token too old; authenticate again" {
		t.Errorf("message = %q", e.Message)
	}
}
