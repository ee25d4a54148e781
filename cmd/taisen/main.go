// Command taisen is the taisen game backend: `taisen serve` runs a node,
// `taisen push` sends a push through a node's admin API, `taisen loadtest`
// runs a swarm of simulated players against one, `taisen nodes` lists the
// live nodes of a cluster, and `taisen config`
// prints the configuration reference.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error
}

func commands() []command {
	return []command{
		{"serve", "run a taisen node (embedded NATS and SQLite unless told otherwise)", runServe},
		{"push", "send a push to a user's session through a node's admin API", runPush},
		{"loadtest", "run a swarm of simulated players against a node", runLoadtest},
		{"nodes", "list the live nodes of the cluster (load, readiness, endpoints)", runNodes},
		{"config", "print every setting with its flag, environment variable and default", runConfig},
		{"version", "print the version", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "taisen %s: a game backend in one binary. Today: realtime WebSocket sessions, accounts and\n", version)
	fmt.Fprintln(w, "auth, single login and resume across a cluster, and pushes sent through the admin API.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: taisen <command> [flags]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-9s %s\n", "help", "print this help")
	fmt.Fprintln(w, "\nRun `taisen <command> --help` for a command's flags. Settings of `taisen serve` come from")
	fmt.Fprintln(w, "flags, then TAISEN_* environment variables, then a JSON file (--config); `taisen config`")
	fmt.Fprintln(w, "lists them. Secrets given as flags are visible in ps: prefer the environment or the file.")
}

// errUsage marks a usage error already explained to the user.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr, getenv)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(stderr, "taisen %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "taisen: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

var version = "0.1.0-dev"

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer, _ func(string) string) error {
	fmt.Fprintln(stdout, "taisen", version)
	return nil
}
