package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/taisen-dev/taisen/client"
	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
)

// TestStoredNotificationSurvivesKill: once Send answers STORED, a kill -9
// of the node loses nothing; the player gets the item at the next login
// on the restarted node.
func TestStoredNotificationSurvivesKill(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	clientAddr, adminAddr := freeAddr(t), freeAddr(t)
	srv, _ := serve(t, nil, "--data", dataDir, "--client-addr", clientAddr, "--admin-addr", adminAddr, "--log-level", "warn")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c, err := client.New("http://" + clientAddr)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := c.AuthenticateDevice(ctx, "device-kill-0001", true)
	if err != nil {
		t.Fatal(err)
	}
	user := auth.GetSession().GetUserId()
	key, err := os.ReadFile(filepath.Join(dataDir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	notify := adminv1connect.NewNotifyServiceClient(http.DefaultClient, "http://"+adminAddr)
	req := connect.NewRequest(&adminv1.SendRequest{UserIds: []string{user}, Id: "order-77", Subject: "purchase",
		Mode: apiv1.NotifyMode_NOTIFY_MODE_STORED})
	req.Header().Set("Authorization", "Bearer "+strings.TrimSpace(string(key)))
	resp, err := notify.Send(ctx, req)
	if err != nil || resp.Msg.Results[0].Outcome != adminv1.SendOutcome_SEND_OUTCOME_STORED {
		t.Fatalf("send: %v %v", resp, err)
	}

	if err := srv.Process.Kill(); err != nil { // SIGKILL: no drain, no flush
		t.Fatal(err)
	}
	_, _ = srv.Process.Wait()
	serve(t, nil, "--data", dataDir, "--client-addr", clientAddr, "--admin-addr", adminAddr, "--log-level", "warn")

	s, err := c.Login(ctx, client.DeviceCredential("device-kill-0001", false), client.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	select {
	case p := <-s.Pushes():
		if p.GetKind() != "notify" || p.GetId() != "order-77" {
			t.Fatalf("push %v, want the stored notification", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stored notification was lost with the killed node")
	}
}
