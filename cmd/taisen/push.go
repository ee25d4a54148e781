package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"

	adminv1 "github.com/taisen-dev/taisen/gen/go/taisen/admin/v1"
	"github.com/taisen-dev/taisen/gen/go/taisen/admin/v1/adminv1connect"
)

// runPush sends one push through a node's admin API
// (taisen.admin.v1.SessionService/SendPush), as a game backend would.
func runPush(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "http://127.0.0.1:7351", "the node's admin listener URL (any node of the cluster)")
	key := fs.String("server-key", "", "the server key (visible in ps: prefer TAISEN_SERVER_KEY; default: the server.key file in --data)")
	data := fs.String("data", "./taisen-data", "data dir whose server.key is used when neither --server-key nor TAISEN_SERVER_KEY is given")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: taisen push [flags] USER KIND [PAYLOAD]")
		fmt.Fprintln(stderr, "\nSends a push to USER's session wherever it lives in the cluster, through the admin")
		fmt.Fprintln(stderr, "API (SessionService.SendPush). PAYLOAD is sent as bytes (- reads it from stdin; empty")
		fmt.Fprintln(stderr, "when omitted). Prints the push's sequence number; exits 1 when the user is offline.")
		fmt.Fprintln(stderr, "\nFlags (before or after the arguments):")
		fs.PrintDefaults()
	}
	// Flags may follow the arguments: parse, take an argument, repeat.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) < 2 || len(pos) > 3 {
		fs.Usage()
		return fmt.Errorf("%w: want USER KIND [PAYLOAD], got %d arguments", errUsage, len(pos))
	}
	user, kind := pos[0], pos[1]
	var payload []byte
	if len(pos) == 3 {
		payload = []byte(pos[2])
		if pos[2] == "-" {
			b, err := io.ReadAll(os.Stdin)
			if err != nil {
				return fmt.Errorf("read the payload from stdin: %w", err)
			}
			payload = b
		}
	}
	serverKey, err := findServerKey(*key, getenv, *data)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cl := adminv1connect.NewSessionServiceClient(http.DefaultClient, strings.TrimRight(*admin, "/"))
	req := connect.NewRequest(&adminv1.SendPushRequest{UserId: user, Kind: kind, Payload: payload})
	req.Header().Set("Authorization", "Bearer "+serverKey)
	resp, err := cl.SendPush(ctx, req)
	switch {
	case connect.CodeOf(err) == connect.CodeUnauthenticated:
		return fmt.Errorf("%s refused the server key (check --server-key, TAISEN_SERVER_KEY or --data): %w", *admin, err)
	case err != nil:
		return fmt.Errorf("send push via %s: %w", *admin, err)
	case !resp.Msg.Delivered:
		return fmt.Errorf("user %s is offline (no live or resumable session on any node): nothing was delivered", user)
	}
	fmt.Fprintf(stdout, "delivered to %s: seq %d\n", user, resp.Msg.Seq)
	return nil
}

// findServerKey picks the key from the flag, then TAISEN_SERVER_KEY, then
// the data dir's server.key file.
func findServerKey(flagKey string, getenv func(string) string, dataDir string) (string, error) {
	if flagKey != "" {
		return flagKey, nil
	}
	if k := getenv("TAISEN_SERVER_KEY"); k != "" {
		return k, nil
	}
	path := filepath.Join(dataDir, "server.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no server key: give --server-key, set TAISEN_SERVER_KEY, or point --data at the node's data dir (%s does not exist)", path)
	}
	if err != nil {
		return "", fmt.Errorf("server key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
