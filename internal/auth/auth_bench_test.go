package auth

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/taisen-dev/taisen/internal/store"
	"github.com/taisen-dev/taisen/internal/store/sqlite"
)

func BenchmarkHashDefault(b *testing.B) {
	h, err := NewHasher(DefaultPasswordParams(), 0)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifySession(b *testing.B) {
	clock := newTestClock()
	ti, err := NewTokenIssuer(TokenConfig{Secret: testSecret, Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	sess, err := ti.Issue("0195a4c2-7e3b-7d41-9a52-6f0e1c2d3b4a", "player_abcdefghij")
	if err != nil {
		b.Fatal(err)
	}
	token := sess.GetToken()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ti.VerifySession(token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssueGrant measures signing a login's two tokens.
func BenchmarkIssueGrant(b *testing.B) {
	ti, err := NewTokenIssuer(TokenConfig{Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	g := Grant{UserID: "0195a4c2-7e3b-7d41-9a52-6f0e1c2d3b4a", Username: "player_abcdefghij", Family: NewFamily(), Generation: 3, Epoch: 1}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ti.IssueGrant(g); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateDevice measures a device login (lookup, account
// load, two signed tokens) against the in-memory fake store.
func BenchmarkAuthenticateDevice(b *testing.B) {
	env := newTestEnv(b)
	ctx := context.Background()
	if _, err := env.svc.Authenticate(ctx, deviceReq("bench-device-0001", true)); err != nil {
		b.Fatal(err)
	}
	req := deviceReq("bench-device-0001", false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := env.svc.Authenticate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthenticateDeviceSQLite measures a device login of an existing
// account against a real SQLite store: the credential lookup, the account
// load and two signed tokens.
func BenchmarkAuthenticateDeviceSQLite(b *testing.B) {
	st, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "taisen.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	tokens, err := NewTokenIssuer(TokenConfig{Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	hasher, err := NewHasher(fastParams, 0)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := New(Config{}, Deps{Accounts: st, Tokens: tokens, Hasher: hasher})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.Authenticate(ctx, deviceReq("bench-device-0001", true)); err != nil {
		b.Fatal(err)
	}
	req := deviceReq("bench-device-0001", false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := svc.Authenticate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServiceVerifySession measures the socket's token check: the
// signature and the revocation cache, with a few thousand restricted
// accounts cached.
func BenchmarkServiceVerifySession(b *testing.B) {
	env := newTestEnv(b)
	ctx := context.Background()
	res, err := env.svc.Authenticate(ctx, deviceReq("bench-device-0001", true))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 4096 {
		env.svc.revoked.setUser(store.SessionState{AccountID: fmt.Sprintf("revoked-%d", i), Epoch: 1})
	}
	token := res.GetSession().GetToken()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := env.svc.VerifySession(token); err != nil {
			b.Fatal(err)
		}
	}
}
