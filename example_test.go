package taisen_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/taisen-dev/taisen"
	"github.com/taisen-dev/taisen/client"
)

// An RPC handler returns a *taisen.Error to give the client a stable code
// and a message; the Go client receives them in a *client.Error.
func ExampleNewError() {
	dir, err := os.MkdirTemp("", "taisen-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	cfg := taisen.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.ClientAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"

	srv, err := taisen.New(cfg)
	if err != nil {
		panic(err)
	}
	srv.LogOutput = io.Discard
	err = srv.RegisterRPC("inventory.get", func(ctx context.Context, c taisen.Call) ([]byte, error) {
		if item := string(c.Payload); item != "sword" {
			return nil, taisen.NewError(taisen.CodeNotFound, "no item %q", item)
		}
		return []byte("a sword"), nil
	})
	if err != nil {
		panic(err)
	}

	ctx, stop := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { stop(); <-done }()

	// A game client.
	c, err := client.New("http://" + srv.ClientAddr())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	auth, err := c.AuthenticateDevice(ctx, "example-device-0001", true)
	if err != nil {
		panic(err)
	}
	sock, err := c.Dial(ctx, client.DialOptions{Session: auth.GetSession()})
	if err != nil {
		panic(err)
	}
	defer sock.Close()

	_, err = sock.RPC(ctx, "inventory.get", []byte("shield"))
	var e *client.Error
	if errors.As(err, &e) && e.Code == client.CodeNotFound {
		fmt.Println(client.CodeName(e.Code)+":", e.Message)
	}
	// Output: not_found: no item "shield"
}
