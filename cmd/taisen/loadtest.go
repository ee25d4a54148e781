package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/taisen-dev/taisen/client"
	"github.com/taisen-dev/taisen/internal/loadtest"
)

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadtest.Config
	var jsonFile, format string
	fs.StringVar(&cfg.Target, "target", loadtest.DefaultTarget, "the node's client listener URL")
	fs.StringVar(&cfg.Scenario, "scenario", loadtest.ScenarioIdle, "idle: connect N sessions and hold them; login: a login storm")
	fs.IntVar(&cfg.Sessions, "sessions", 100, fmt.Sprintf("sessions to run (at most %d per process: the fd limit)", loadtest.MaxSessions))
	fs.Float64Var(&cfg.Rate, "rate", 0, "sessions started per second; 0 = as fast as --concurrency allows")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, fmt.Sprintf("sessions connecting at once (default %d, or about 2x rate)", loadtest.DefaultConcurrency))
	fs.DurationVar(&cfg.Duration, "duration", loadtest.DefaultHold, "how long sessions are held (idle, or login with --hold)")
	fs.StringVar(&cfg.LoginPath, "login-path", loadtest.LoginPathHello, "how each session signs in: hello (device credential in the socket's Hello, no HTTP request) or http (HTTP authenticate, then dial with the token)")
	fs.BoolVar(&cfg.Hold, "hold", false, "login: keep the sessions until the end instead of closing each after its welcome")
	fs.Float64Var(&cfg.RPCRate, "rpc-rate", 0, "idle: no-op RPCs (taisen.echo) per second from random held sessions, to measure the round trip under load")
	fs.IntVar(&cfg.SourceIPs, "source-ips", loadtest.DefaultSourceIPs, "spread sockets over 127.0.0.2..127.0.0.(1+N) on loopback targets; negative disables")
	fs.StringVar(&cfg.AdminURL, "admin", "", "the node's admin URL: scrape /metrics to report the server's CPU per login and memory per held session")
	fs.StringVar(&cfg.ServerKey, "server-key", "", "with --admin: the node's server key, sent as a bearer token when /metrics require it (env TAISEN_SERVER_KEY; prefer the env: flags are visible in ps)")
	fs.DurationVar(&cfg.Settle, "settle", loadtest.DefaultSettle, "with --admin: wait this long after connecting before reading server memory")
	fs.DurationVar(&cfg.MaxRunTime, "max-run-time", loadtest.DefaultMaxRunTime, "hard cap on the whole run")
	fs.StringVar(&format, "format", "proto", "socket frame format: proto or json")
	fs.StringVar(&cfg.RunID, "run-id", "", "name the accounts lt-<run-id>-<i>; reuse a run id to log in existing players instead of creating new ones (random when empty)")
	fs.StringVar(&jsonFile, "json", "", "write the JSON report to this file (- for stdout)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: taisen loadtest [flags]")
		fmt.Fprintln(stderr, "\nRuns a swarm of simulated players against a node: every account is created through")
		fmt.Fprintln(stderr, "the public API, sockets are spread over 127.0.0.x, progress is printed each second,")
		fmt.Fprintln(stderr, "and the run stops by itself. Latency = login start → welcome on the socket. With --admin")
		fmt.Fprintln(stderr, "the report includes server_cpu_us_per_session, the node's CPU time per login.")
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.ServerKey == "" {
		cfg.ServerKey = getenv("TAISEN_SERVER_KEY")
	}
	f, err := client.ParseFormat(format)
	if err != nil {
		return err
	}
	cfg.Format = f
	if err := cfg.WithDefaults().Validate(); err != nil {
		return err
	}
	report, err := loadtest.Run(ctx, cfg, stderr)
	if report != nil {
		fmt.Fprintln(stdout, report.Summary())
		if jsonFile != "" {
			if werr := writeReport(report, jsonFile, stdout); werr != nil {
				return errors.Join(err, werr)
			}
		}
	}
	return err
}

func writeReport(r *loadtest.Report, path string, stdout io.Writer) error {
	if path == "-" {
		return r.WriteJSON(stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("json report: %w", err)
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("json report: %w", err)
	}
	return f.Close()
}
