package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
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

// Every error answer of the Connect protocol, including the ones Connect
// writes before any handler runs, has a Taisen-Error-Code header and a
// human sentence in a Connect JSON error body, with no Go internals.
func TestHTTPErrorAnswers(t *testing.T) {
	env := newTestEnv(t)
	mux := http.NewServeMux()
	path, h := HTTPHandler(env.svc)
	mux.Handle(path, h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	authURL := srv.URL + "/taisen.api.v1.AuthService/Authenticate"
	big := `{"device":{"id":"device-0000001"},"username":"` + strings.Repeat("u", maxRequestBytes) + `"}`

	for _, tc := range []struct {
		name        string
		method      string
		url         string
		contentType string
		body        string
		chunked     bool
		wantStatus  int
		wantCode    string
		wantMsg     string // a substring
	}{
		{"malformed JSON", "POST", authURL, "application/json", `{"device":`, false, 400, "bad_request", "not a valid message"},
		{"wrong field type", "POST", authURL, "application/json", `{"create":"yes"}`, false, 400, "bad_request", "not a valid message"},
		{"unknown field ignored", "POST", authURL, "application/json", `{"devise":{"id":"x"}}`, false, 400, "bad_request", "exactly one credential"},
		{"garbage protobuf", "POST", authURL, "application/proto", "\xff\xff\xff", false, 400, "bad_request", "not a valid message"},
		{"no Content-Type", "POST", authURL, "", `{}`, false, 415, "bad_request", "unsupported Content-Type"},
		{"text/plain", "POST", authURL, "text/plain", `{}`, false, 415, "bad_request", "unsupported Content-Type"},
		{"body over 16 KiB", "POST", authURL, "application/json", big, false, 413, "bad_request", "larger than 16384 bytes"},
		{"chunked body over 16 KiB", "POST", authURL, "application/json", big, true, 413, "bad_request", "larger than 16384 bytes"},
		{"unknown procedure", "POST", srv.URL + "/taisen.api.v1.AuthService/Nope", "application/json", `{}`, false, 404, "unknown_rpc", "no such procedure"},
		{"GET", "GET", authURL, "", "", false, 405, "bad_request", "use POST"},
		{"handler error passes", "POST", authURL, "application/json", `{"device":{"id":"short"}}`, false, 400, "bad_request", "device.id must be 10-128 printable ASCII characters"},
		{"invalid credentials pass", "POST", authURL, "application/json", `{"device":{"id":"device-unknown-1"}}`, false, 401, "invalid_credentials", "invalid credentials"},
		{"success", "POST", authURL, "application/json", `{"device":{"id":"device-http-ok-1"},"create":true}`, false, 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(strings.NewReader(tc.body)) // unknown length: sent chunked
			}
			req, err := http.NewRequest(tc.method, tc.url, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			res, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			raw, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", res.StatusCode, tc.wantStatus, raw)
			}
			if got := res.Header.Get(apierr.CodeHeader); got != tc.wantCode {
				t.Errorf("%s = %q, want %q", apierr.CodeHeader, got, tc.wantCode)
			}
			if tc.wantStatus == 200 {
				return
			}
			var e struct{ Code, Message string }
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("body %q is not a Connect JSON error: %v", raw, err)
			}
			if e.Code == "" || !strings.Contains(e.Message, tc.wantMsg) {
				t.Errorf("body = %s, want a code and a message containing %q", raw, tc.wantMsg)
			}
			for _, internal := range []string{"proto:", "unmarshal", "*apiv1", "syntax error", "EOF"} {
				if strings.Contains(e.Message, internal) {
					t.Errorf("message %q shows Go internals (%q)", e.Message, internal)
				}
			}
		})
	}
}
