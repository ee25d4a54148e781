package taisen_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	"github.com/taisen-dev/taisen"
	"github.com/taisen-dev/taisen/client"
	"github.com/taisen-dev/taisen/examples/tictactoe"
	"github.com/taisen-dev/taisen/game"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	"github.com/taisen-dev/taisen/internal/gateway"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startServer runs a Server in-process on random loopback ports until the
// test ends.
func startServer(t *testing.T, register func(*taisen.Server)) *taisen.Server {
	t.Helper()
	cfg := taisen.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.ClientAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DrainTimeout = 5 * time.Second
	srv, err := taisen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.LogOutput = io.Discard
	register(srv)
	ctx, stop := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		stop()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial logs a new device in and opens its socket.
func dial(t *testing.T, srv *taisen.Server, device string) (*client.Socket, string) {
	t.Helper()
	c, err := client.New("http://" + srv.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	auth, err := c.AuthenticateDevice(testCtx(t), device, true)
	if err != nil {
		t.Fatal(err)
	}
	sock, err := c.Dial(testCtx(t), client.DialOptions{Session: auth.GetSession()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sock.Close() })
	return sock, auth.GetSession().GetUserId()
}

func TestRPCErrorReachesClient(t *testing.T) {
	secret := errors.New("SELECT gold FROM wallets: connection refused")
	srv := startServer(t, func(srv *taisen.Server) {
		handlers := map[string]taisen.RPCFunc{
			"game.missing": func(context.Context, taisen.Call) ([]byte, error) {
				return nil, taisen.NewError(taisen.CodeNotFound, "no item %d", 42)
			},
			"game.wrapped": func(context.Context, taisen.Call) ([]byte, error) {
				return nil, fmt.Errorf("buy: %w", taisen.NewError(taisen.CodeConflict, "the price changed"))
			},
			"game.cause": func(context.Context, taisen.Call) ([]byte, error) {
				return nil, &taisen.Error{Code: taisen.CodeFailedPrecondition, Message: "not enough gold", Err: secret}
			},
			"game.plain": func(context.Context, taisen.Call) ([]byte, error) {
				return nil, secret
			},
			"game.nocode": func(context.Context, taisen.Call) ([]byte, error) {
				return nil, &taisen.Error{Message: "forgot the code"}
			},
		}
		for name, fn := range handlers {
			if err := srv.RegisterRPC(name, fn); err != nil {
				t.Fatal(err)
			}
		}
	})
	sock, _ := dial(t, srv, "rpc-error-device-1")

	tests := []struct {
		rpc      string
		wantCode client.Code
		wantMsg  string
	}{
		{"game.missing", client.CodeNotFound, "no item 42"},
		{"game.wrapped", client.CodeConflict, "the price changed"},
		{"game.cause", client.CodeFailedPrecondition, "not enough gold"},
		{"game.plain", client.CodeInternal, "internal error"},
		{"game.nocode", client.CodeInternal, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.rpc, func(t *testing.T) {
			_, err := sock.RPC(testCtx(t), tt.rpc, nil)
			var e *client.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want a *client.Error", err, err)
			}
			if e.Code != tt.wantCode || e.Message != tt.wantMsg {
				t.Errorf("got %v %q, want %v %q", e.Code, e.Message, tt.wantCode, tt.wantMsg)
			}
			if !errors.Is(err, &client.Error{Code: tt.wantCode}) {
				t.Errorf("errors.Is(%v, code %v) = false", err, tt.wantCode)
			}
		})
	}
	// The public constants are the client's codes.
	if taisen.CodeNotFound != client.CodeNotFound {
		t.Error("taisen.CodeNotFound differs from client.CodeNotFound")
	}
}

func TestPushOffline(t *testing.T) {
	srv := startServer(t, func(*taisen.Server) {})
	sock, user := dial(t, srv, "push-device-0001")

	seq, err := srv.Push(testCtx(t), user, "chat.message", []byte("hi"))
	if err != nil || seq != 1 {
		t.Fatalf("Push = %d, %v; want 1, nil", seq, err)
	}
	select {
	case p := <-sock.Pushes():
		if p.GetSeq() != 1 || p.GetKind() != "chat.message" || string(p.GetPayload()) != "hi" {
			t.Errorf("push = %v", p)
		}
	case <-testCtx(t).Done():
		t.Fatal("no push")
	}

	_, err = srv.Push(testCtx(t), "00000000-0000-0000-0000-000000000000", "chat.message", nil)
	if !errors.Is(err, taisen.ErrOffline) {
		t.Errorf("Push to an unknown user: %v, want ErrOffline", err)
	}
	if !errors.Is(err, gateway.ErrOffline) {
		t.Errorf("Push to an unknown user: %v does not wrap gateway.ErrOffline", err)
	}
}

func TestServerBeforeStart(t *testing.T) {
	cfg := taisen.DefaultConfig()
	cfg.DataDir = t.TempDir()
	srv, err := taisen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a, b, k := srv.ClientAddr(), srv.AdminAddr(), srv.ServerKey(); a != "" || b != "" || k != "" {
		t.Errorf("before Start: ClientAddr %q, AdminAddr %q, ServerKey %q; want empty", a, b, k)
	}
	if _, err := srv.Push(context.Background(), "u", "k", nil); !errors.Is(err, taisen.ErrNotStarted) {
		t.Errorf("Push before Start: %v, want ErrNotStarted", err)
	}
}

func TestErrorIs(t *testing.T) {
	err := fmt.Errorf("inventory: %w", taisen.NewError(taisen.CodeNotFound, "no item"))
	if !errors.Is(err, &taisen.Error{Code: taisen.CodeNotFound}) {
		t.Error("errors.Is by code failed")
	}
	if errors.Is(err, &taisen.Error{Code: taisen.CodeConflict}) {
		t.Error("errors.Is matched another code")
	}
	if got := err.Error(); got != "inventory: not_found: no item" {
		t.Errorf("Error() = %q", got)
	}
	cause := errors.New("row missing")
	e := &taisen.Error{Code: taisen.CodeNotFound, Message: "no item", Err: cause}
	if !errors.Is(e, cause) || e.Error() != "not_found: no item: row missing" {
		t.Errorf("cause: Is %v, Error() %q", errors.Is(e, cause), e.Error())
	}
	if got := (&taisen.Error{Code: taisen.CodeConflict}).Error(); got != "conflict" {
		t.Errorf("Error() without a message = %q", got)
	}
	if m := taisen.NewError(taisen.CodeBadRequest, "100%").Message; m != "100%" {
		t.Errorf("NewError without args formatted the message: %q", m)
	}
}

// TestSendNotificationFromGo sends a stored notification from game code
// to a user who logged out; it arrives at the next login.
func TestSendNotificationFromGo(t *testing.T) {
	ctx := testCtx(t)
	if _, _, err := (&taisen.Server{}).SendNotification(ctx, []string{"u"}, taisen.Notification{}); !errors.Is(err, taisen.ErrNotStarted) {
		t.Fatalf("before Start: %v", err)
	}
	srv := startServer(t, func(*taisen.Server) {})
	sock, user := dial(t, srv, "device-go-notify")
	if err := sock.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	id, out, err := srv.SendNotification(ctx, []string{user}, taisen.Notification{ID: "reward-1", Subject: "reward", Content: []byte("100 gold"), Mode: taisen.NotifyStored})
	if err != nil || id != "reward-1" || out[0] != taisen.SendStored {
		t.Fatalf("send: %q %v %v", id, out, err)
	}
	sock, _ = dial(t, srv, "device-go-notify")
	select {
	case p := <-sock.Pushes():
		if p.GetKind() != "notify" || p.GetId() != "reward-1" {
			t.Fatalf("push %v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stored notification did not arrive at login")
	}
}

func TestRegisterGame(t *testing.T) {
	ctx := testCtx(t)
	ttt := game.MustNew(tictactoe.Def)
	srv := startServer(t, func(s *taisen.Server) {
		if err := s.RegisterGame(ttt); err != nil {
			t.Fatal(err)
		}
		if err := s.RegisterGame(ttt); err == nil {
			t.Fatal("registering tictactoe twice: nil error")
		}
	})
	_, user := dial(t, srv, "device-go-room")
	rooms := adminv1connect.NewRoomServiceClient(http.DefaultClient, "http://"+srv.AdminAddr())
	for _, tc := range []struct {
		game string
		want connect.Code // 0: created
	}{{tictactoe.Name, 0}, {"arena", connect.CodeNotFound}} {
		req := connect.NewRequest(&adminv1.CreateRoomRequest{Game: tc.game, UserIds: []string{user, "someone-else"}})
		req.Header().Set("Authorization", "Bearer "+srv.ServerKey())
		resp, err := rooms.CreateRoom(ctx, req)
		if tc.want == 0 && (err != nil || len(resp.Msg.Tickets) != 2) {
			t.Fatalf("create %s: %v, %v", tc.game, resp, err)
		}
		if tc.want != 0 && connect.CodeOf(err) != tc.want {
			t.Fatalf("create %s: %v, want %v", tc.game, err, tc.want)
		}
	}
}
