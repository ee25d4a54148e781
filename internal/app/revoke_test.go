package app_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/taisen-dev/taisen/client"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/taisentest"
)

// The admin AccountService revokes a user's sessions: the live socket
// closes (kicked), and the old session and refresh tokens are refused.
// (auth's own tests cover two nodes sharing a store and a bus.)
func TestAdminRevokeSessions(t *testing.T) {
	a := taisentest.StartNode(t, taisentest.Options{})
	sess := authenticate(t, a, "device-revoke-01")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.New(a.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sock, err := cl.Dial(ctx, client.DialOptions{Session: sess})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()

	admin := adminv1connect.NewAccountServiceClient(http.DefaultClient, a.AdminURL, connect.WithInterceptors(bearerKey(a.ServerKey)))
	if _, err := admin.RevokeSessions(ctx, connect.NewRequest(&adminv1.RevokeSessionsRequest{UserId: sess.GetUserId()})); err != nil {
		t.Fatalf("RevokeSessions: %v", err)
	}
	select {
	case <-sock.Done():
	case <-ctx.Done():
		t.Fatal("the live socket was not closed after RevokeSessions")
	}
	var ce *client.CloseError
	if err := sock.Err(); !errors.As(err, &ce) || ce.Reason != realtimev1.CloseReason_CLOSE_REASON_KICKED {
		t.Errorf("socket ended with %v, want kicked", err)
	}
	if _, err := cl.Dial(ctx, client.DialOptions{Session: sess}); err == nil {
		t.Error("the revoked session token opened a socket")
	}
	if _, err := cl.Refresh(ctx, sess.GetRefreshToken()); err == nil {
		t.Error("the revoked refresh token was accepted")
	}

	if _, err := admin.RevokeSessions(ctx, connect.NewRequest(&adminv1.RevokeSessionsRequest{UserId: "no-such-user"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("RevokeSessions(unknown user) = %v, want not_found", err)
	}
	unkeyed := adminv1connect.NewAccountServiceClient(http.DefaultClient, a.AdminURL)
	if _, err := unkeyed.DisableAccount(ctx, connect.NewRequest(&adminv1.DisableAccountRequest{UserId: sess.GetUserId()})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("DisableAccount without the server key = %v, want unauthenticated", err)
	}
}

func bearerKey(key string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+key)
			return next(ctx, req)
		}
	}
}
