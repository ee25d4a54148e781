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
	fs.StringVar(&cfg.Scenario, "scenario", loadtest.ScenarioIdle, "idle: connect N sessions and hold them; login: a login storm; fanout: topic items to subscribed sessions; notify: per-user notifications to online users; inbox: stored and retained items delivered at a login wave; disconnect: every session drops at once (the last four need --admin and the server key)")
	fs.IntVar(&cfg.Sessions, "sessions", 100, fmt.Sprintf("sessions to run (at most %d per process: the fd limit)", loadtest.MaxSessions))
	fs.Float64Var(&cfg.Rate, "rate", 0, fmt.Sprintf("sessions started per second; 0 = as fast as --concurrency allows. fanout: items published per second (default %d); notify: notifications sent per second (default %d)", loadtest.DefaultFanoutRate, loadtest.DefaultNotifyRate))
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, fmt.Sprintf("sessions connecting at once (default %d, or about 2x rate)", loadtest.DefaultConcurrency))
	fs.DurationVar(&cfg.Duration, "duration", loadtest.DefaultHold, "how long sessions are held (idle, or login with --hold); notify: how long notifications are sent; inbox and disconnect: the longest wait for the figure measured")
	fs.IntVar(&cfg.Topics, "topics", 0, fmt.Sprintf("fanout: topics the sessions are subscribed to, round robin (default %d); idle with --topics-per-session: the pool of topics the run creates (default: --topics-per-session, every session on every topic)", loadtest.DefaultTopics))
	fs.IntVar(&cfg.TopicsPerSession, "topics-per-session", 0, fmt.Sprintf("idle: create --topics topics clients may subscribe to (needs --admin and the server key), and have each session subscribe itself over its socket to this many of them after its welcome (0-%d)", loadtest.MaxTopicsPerSession))
	fs.IntVar(&cfg.Follows, "follows", 0, fmt.Sprintf("idle: each session sets its presence status (playing %q) after its welcome and, once all are connected, follows the presence of this many other sessions of the run; presence pushes are read and counted (0-%d, fewer than --sessions)", loadtest.IdleActivity, loadtest.MaxFollows))
	fs.IntVar(&cfg.Messages, "messages", 0, fmt.Sprintf("fanout: items published in all, spread over the topics (default %d); inbox: stored items sent to each offline user (default %d)", loadtest.DefaultFanoutMessages, loadtest.DefaultInboxMessages))
	fs.IntVar(&cfg.Retained, "retained", 0, fmt.Sprintf("inbox: retained items of the topic every user is subscribed to (0-%d)", loadtest.MaxRetained))
	fs.DurationVar(&cfg.Drain, "drain", 0, fmt.Sprintf("fanout, notify: how long to wait after the last publish for the deliveries still expected (default %v)", loadtest.DefaultDrain))
	fs.StringVar(&cfg.LoginPath, "login-path", loadtest.LoginPathHello, "how each session signs in: hello (device credential in the socket's Hello, no HTTP request) or http (HTTP authenticate, then dial with the token)")
	fs.BoolVar(&cfg.Hold, "hold", false, "login: keep the sessions until the end instead of closing each after its welcome")
	fs.Float64Var(&cfg.RPCRate, "rpc-rate", 0, "idle: no-op RPCs (taisen.echo) per second from random held sessions, to measure the round trip under load")
	fs.IntVar(&cfg.SourceIPs, "source-ips", loadtest.DefaultSourceIPs, "spread sockets over 127.0.0.2..127.0.0.(1+N) on loopback targets; negative disables")
	fs.StringVar(&cfg.AdminURL, "admin", "", "the node's admin URL: scrape /metrics to report the server's CPU per login and memory per held session; the notification API of fanout, notify, inbox and disconnect")
	fs.StringVar(&cfg.ServerKey, "server-key", "", "with --admin: the node's server key, sent as a bearer token when /metrics require it and to the notification API (env TAISEN_SERVER_KEY; prefer the env: flags are visible in ps)")
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
		fmt.Fprintln(stderr, "fanout and notify report deliveries, deliveries_per_s, lost, duplicates and latency_ms")
		fmt.Fprintln(stderr, "(publish to receive; the login latency is login_latency_ms); inbox reports expected,")
		fmt.Fprintln(stderr, "delivered, lost, duplicates and all_delivered_ms; disconnect reports zero_active_ms")
		fmt.Fprintln(stderr, "and presence_offline_ms. A dropped user reads offline once its session record expires")
		fmt.Fprintln(stderr, "(the node's --session-ttl, 90s by default): give disconnect a --duration longer than that.")
		fmt.Fprintln(stderr, "The last four scenarios call the node's notification API: they need --admin and the")
		fmt.Fprintln(stderr, "server key (--server-key or TAISEN_SERVER_KEY), like idle with --topics-per-session.")
		fmt.Fprintln(stderr, "idle with --topics-per-session or --follows reports topics_created, topic_subscriptions,")
		fmt.Fprintln(stderr, "statuses_set, follows and pushes_received (by kind); failed setup requests count as errors.")
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
	if cfg.Scenario == loadtest.ScenarioFanout || cfg.Scenario == loadtest.ScenarioNotify {
		// --rate paces the publishing; the sessions connect as fast as
		// --concurrency allows.
		cfg.SendRate, cfg.Rate = cfg.Rate, 0
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
