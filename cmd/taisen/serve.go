package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/taisen-dev/taisen/examples/arena"
	"github.com/taisen-dev/taisen/examples/duel"
	"github.com/taisen-dev/taisen/examples/tictactoe"
	"github.com/taisen-dev/taisen/game"
	"github.com/taisen-dev/taisen/internal/app"
	"github.com/taisen-dev/taisen/internal/config"
)

func runServe(ctx context.Context, args []string, _, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: taisen serve [flags]")
		fmt.Fprintln(stderr, "\nRuns a node. With no flags: client listener 127.0.0.1:7350 (HTTP API, WebSocket /ws),")
		fmt.Fprintln(stderr, "admin listener 127.0.0.1:7351 (/healthz, /readyz, /metrics; the server API and, with")
		fmt.Fprintln(stderr, "--pprof, /debug/pprof/ need the server key), embedded NATS and SQLite under ./taisen-data.")
		fmt.Fprintln(stderr, "SIGTERM drains: clients are told to reconnect elsewhere, then the node exits 0. A second")
		fmt.Fprintln(stderr, "signal exits at once. Flags are visible in ps: pass secrets as TAISEN_* or in --config.")
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	cfg, err := config.Load(fs, args, getenv)
	if err != nil {
		return err
	}
	if cfg.GCPercent > 0 {
		// Process-wide, so it is set here and not by the app package, which
		// may be embedded in a game's own binary.
		debug.SetGCPercent(cfg.GCPercent)
	}
	games, err := stockGames()
	if err != nil {
		return err
	}
	a, err := app.New(ctx, cfg, app.Options{LogOutput: stderr, Version: version, Games: games})
	if err != nil {
		return err
	}
	// A second signal during the drain exits at once.
	go func() {
		<-ctx.Done()
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		<-again
		fmt.Fprintln(stderr, "taisen serve: second signal, exiting without finishing the drain")
		os.Exit(1)
	}()
	return a.Run(ctx)
}

func runConfig(_ context.Context, args []string, stdout, stderr io.Writer, _ func(string) string) error {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: taisen config\n\nPrints every setting of `taisen serve` as a Markdown table.")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Settings of `taisen serve`. Precedence: flags > TAISEN_* environment > JSON file (--config) > default.")
	fmt.Fprintln(stdout)
	config.WriteReference(stdout)
	return nil
}

// stockGames are the games the stock binary's rooms run: the bundled
// examples. A studio builds its own binary with taisen as a library and
// registers its games with taisen.Server.RegisterGame.
func stockGames() (*game.Registry, error) {
	var r game.Registry
	for _, g := range []game.Game{game.MustNew(tictactoe.Def), game.MustNew(arena.Def), game.MustNew(duel.Def)} {
		if err := r.Register(g); err != nil {
			return nil, err
		}
	}
	return &r, nil
}
