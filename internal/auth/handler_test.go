package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/api/v1/apiv1connect"
	"github.com/taisen-dev/taisen/internal/apierr"
)

// syncBuffer is a log sink safe to read while the server writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wantConnectError fails unless err is a Connect error with code cc and
// Taisen-Error-Code name.
func wantConnectError(t *testing.T, err error, cc connect.Code, name string) *connect.Error {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a *connect.Error", err)
	}
	if ce.Code() != cc {
		t.Errorf("connect code = %v, want %v (%v)", ce.Code(), cc, err)
	}
	if got := ce.Meta().Get(apierr.CodeHeader); got != name {
		t.Errorf("%s = %q, want %q", apierr.CodeHeader, got, name)
	}
	return ce
}

func TestConnectEndToEnd(t *testing.T) {
	env := newTestEnv(t)
	logs := &syncBuffer{}
	env.svc.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mux := http.NewServeMux()
	path, h := HTTPHandler(env.svc)
	if path != "/taisen.api.v1.AuthService/" {
		t.Errorf("path = %q, want /taisen.api.v1.AuthService/", path)
	}
	mux.Handle(path, h)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tc := range []struct {
		name string
		opts []connect.ClientOption
	}{
		{"connect binary", nil},
		{"connect json", []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc-web binary", []connect.ClientOption{connect.WithGRPCWeb()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			client := apiv1connect.NewAuthServiceClient(srv.Client(), srv.URL, tc.opts...)
			device := "device-" + strings.ReplaceAll(tc.name, " ", "-")

			res, err := client.Authenticate(ctx, connect.NewRequest(deviceReq(device, true)))
			if err != nil {
				t.Fatalf("Authenticate(create) = %v", err)
			}
			if !res.Msg.GetCreated() || res.Msg.GetSession().GetToken() == "" {
				t.Fatalf("Authenticate(create) = %v, want a created account with tokens", res.Msg)
			}
			id := res.Msg.GetSession().GetUserId()

			res, err = client.Authenticate(ctx, connect.NewRequest(deviceReq(device, false)))
			if err != nil {
				t.Fatalf("Authenticate(login) = %v", err)
			}
			if res.Msg.GetCreated() || res.Msg.GetSession().GetUserId() != id {
				t.Errorf("Authenticate(login) = %v, want user %s, created=false", res.Msg, id)
			}

			ref, err := client.Refresh(ctx, connect.NewRequest(&apiv1.RefreshRequest{RefreshToken: res.Msg.GetSession().GetRefreshToken()}))
			if err != nil {
				t.Fatalf("Refresh = %v", err)
			}
			if ref.Msg.GetSession().GetUserId() != id {
				t.Errorf("Refresh user = %s, want %s", ref.Msg.GetSession().GetUserId(), id)
			}

			_, err = client.Authenticate(ctx, connect.NewRequest(deviceReq("unknown-device", false)))
			ce := wantConnectError(t, err, connect.CodeUnauthenticated, "invalid_credentials")
			if ce.Message() != "invalid credentials" {
				t.Errorf("message = %q, want %q", ce.Message(), "invalid credentials")
			}

			_, err = client.Authenticate(ctx, connect.NewRequest(deviceReq("short", true)))
			ce = wantConnectError(t, err, connect.CodeInvalidArgument, "bad_request")
			if ce.Message() != "device.id must be 10-128 printable ASCII characters" {
				t.Errorf("message = %q", ce.Message())
			}

			_, err = client.Refresh(ctx, connect.NewRequest(&apiv1.RefreshRequest{RefreshToken: res.Msg.GetSession().GetToken()}))
			wantConnectError(t, err, connect.CodeUnauthenticated, "unauthenticated")

			_, err = client.Authenticate(ctx, connect.NewRequest(withUsername(deviceReq(device+"-2", true), strings.Repeat("u", maxRequestBytes))))
			if got := connect.CodeOf(err); got != connect.CodeResourceExhausted {
				t.Errorf("oversized request: code = %v (%v), want %v", got, err, connect.CodeResourceExhausted)
			}
		})
	}

	t.Run("token expired", func(t *testing.T) {
		ctx := context.Background()
		client := apiv1connect.NewAuthServiceClient(srv.Client(), srv.URL, connect.WithProtoJSON())
		res, err := client.Authenticate(ctx, connect.NewRequest(deviceReq("device-expiring", true)))
		if err != nil {
			t.Fatal(err)
		}
		env.clock.Advance(DefaultRefreshTTL + 1)
		_, err = client.Refresh(ctx, connect.NewRequest(&apiv1.RefreshRequest{RefreshToken: res.Msg.GetSession().GetRefreshToken()}))
		wantConnectError(t, err, connect.CodeUnauthenticated, "token_expired")
	})

	t.Run("internal error", func(t *testing.T) {
		ctx := context.Background()
		client := apiv1connect.NewAuthServiceClient(srv.Client(), srv.URL)
		env.store.fail("CredentialAccount", errors.New("secret database detail"))
		_, err := client.Authenticate(ctx, connect.NewRequest(deviceReq("device-anything", true)))
		ce := wantConnectError(t, err, connect.CodeInternal, "internal")
		if ce.Message() != "internal error" {
			t.Errorf("message = %q, want %q (no detail for the client)", ce.Message(), "internal error")
		}
		if got := logs.String(); !strings.Contains(got, "level=ERROR") || !strings.Contains(got, "secret database detail") {
			t.Errorf("logs = %q, want the internal error logged whole at ERROR", got)
		}
	})
}
