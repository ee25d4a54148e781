package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taisen-dev/taisen/client"
	"github.com/taisen-dev/taisen/taisentest"
)

// TestPush runs `taisen push` against a real node with a connected
// player, with the key given each supported way.
func TestPush(t *testing.T) {
	n := taisentest.StartNode(t, taisentest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := client.New(n.ClientURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	auth, err := cl.AuthenticateDevice(ctx, "device-push-cmd-01", true)
	if err != nil {
		t.Fatal(err)
	}
	sock, err := cl.Dial(ctx, client.DialOptions{Session: auth.Session})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	user := auth.Session.UserId

	run := func(env []string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, binary, args...)
		cmd.Env = append(os.Environ(), env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	}
	tests := []struct {
		name    string
		env     []string
		args    []string
		payload string
	}{
		{"key in the environment", []string{"TAISEN_SERVER_KEY=" + n.ServerKey}, []string{"push", "--admin", n.AdminURL, user, "greeting", "hello"}, "hello"},
		{"flags after the arguments", nil, []string{"push", user, "greeting", "second", "--admin", n.AdminURL, "--server-key", n.ServerKey}, "second"},
		{"key from the data dir", []string{"TAISEN_SERVER_KEY="}, []string{"push", "--admin", n.AdminURL, "--data", n.DataDir, user, "greeting"}, ""},
	}
	for i, tt := range tests {
		code, out := run(tt.env, tt.args...)
		want := "delivered to " + user + ": seq " + itoa(i+1)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("%s: exit %d, %q, want %q", tt.name, code, out, want)
			continue
		}
		select {
		case p := <-sock.Pushes():
			if p.Kind != "greeting" || string(p.Payload) != tt.payload {
				t.Errorf("%s: push %s %q", tt.name, p.Kind, p.Payload)
			}
		case <-ctx.Done():
			t.Fatalf("%s: no push reached the player", tt.name)
		}
	}

	failures := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"wrong key", nil, []string{"push", "--admin", n.AdminURL, "--server-key", "wrong-key-wrong-key", user, "k"}, 1, "refused the server key"},
		{"offline user", []string{"TAISEN_SERVER_KEY=" + n.ServerKey}, []string{"push", "--admin", n.AdminURL, "nobody-here", "k"}, 1, "offline"},
		{"no key anywhere", []string{"TAISEN_SERVER_KEY="}, []string{"push", "--admin", n.AdminURL, "--data", filepath.Join(t.TempDir(), "none"), user, "k"}, 1, "no server key"},
		{"missing kind", nil, []string{"push", user}, 2, "Usage: taisen push"},
	}
	for _, tt := range failures {
		code, out := run(tt.env, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%s: exit %d, %q, want exit %d and %q", tt.name, code, out, tt.code, tt.want)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
