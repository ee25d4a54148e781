package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startServe runs `taisen serve` on free ports with the given server key
// and returns its client and admin addresses once it is ready.
func startServe(t *testing.T, serverKey string) (clientAddr, adminAddr string) {
	t.Helper()
	clientAddr, adminAddr = freeAddr(t), freeAddr(t)
	serve(t, []string{"TAISEN_SERVER_KEY=" + serverKey}, "--data", filepath.Join(t.TempDir(), "data"),
		"--client-addr", clientAddr, "--admin-addr", adminAddr, "--log-level", "warn")
	return clientAddr, adminAddr
}

// TestLoadtestServerCPU runs a login storm by each path against a node in
// its own process, so the CPU time read from its /metrics is the server's
// alone, with the server key given through the environment.
func TestLoadtestServerCPU(t *testing.T) {
	const key = "loadtest-test-server-key-0123456789"
	clientAddr, adminAddr := startServe(t, key)
	for _, path := range []string{"hello", "http"} {
		t.Run(path, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			lt := exec.CommandContext(ctx, binary, "loadtest", "--target", "http://"+clientAddr, "--admin", "http://"+adminAddr,
				"--scenario", "login", "--login-path", path, "--sessions", "50", "--json", "-")
			lt.Env = append(os.Environ(), "TAISEN_SERVER_KEY="+key)
			var stdout, stderr bytes.Buffer
			lt.Stdout, lt.Stderr = &stdout, &stderr
			if err := lt.Run(); err != nil {
				t.Fatalf("loadtest: %v\n%s%s", err, stdout.String(), stderr.String())
			}
			out := stdout.String()
			if !strings.Contains(out, "us per session") {
				t.Errorf("the summary lacks the server cpu:\n%s", out)
			}
			var r struct {
				LoginPath     string   `json:"login_path"`
				SessionsOK    int      `json:"sessions_ok"`
				CPUSeconds    *float64 `json:"server_cpu_s"`
				CPUPerSession *float64 `json:"server_cpu_us_per_session"`
			}
			if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil {
				t.Fatalf("report: %v\n%s", err, out)
			}
			if r.LoginPath != path || r.SessionsOK != 50 || r.CPUSeconds == nil || r.CPUPerSession == nil || *r.CPUPerSession <= 0 {
				t.Fatalf("report = %+v\n%s", r, out)
			}
			// A login costs the server well under the 10 ms a second of
			// CPU time would mean for 100 logins/s, and the figure is the
			// phase's CPU time spread over its sessions.
			if *r.CPUPerSession > 10000 {
				t.Errorf("server cpu per session %.1f us is implausible", *r.CPUPerSession)
			}
			if want := *r.CPUSeconds * 1e6 / 50; *r.CPUPerSession < want-1000 || *r.CPUPerSession > want+1000 {
				t.Errorf("server cpu per session %.1f us, but %.3f s over 50 sessions is %.1f", *r.CPUPerSession, *r.CPUSeconds, want)
			}
		})
	}
}

func TestLoadtestBadLoginPath(t *testing.T) {
	out, err := exec.Command(binary, "loadtest", "--scenario", "login", "--login-path", "grpc").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), `login path "grpc"`) {
		t.Errorf("err %v, output:\n%s", err, out)
	}
}

// TestLoadtestFanout runs the fanout scenario of the real binary against
// a node in its own process, the server key given through the
// environment, and reads the delivery figures of its JSON report.
func TestLoadtestFanout(t *testing.T) {
	const key = "loadtest-test-server-key-0123456789"
	clientAddr, adminAddr := startServe(t, key)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lt := exec.CommandContext(ctx, binary, "loadtest", "--target", "http://"+clientAddr, "--admin", "http://"+adminAddr,
		"--scenario", "fanout", "--sessions", "40", "--topics", "2", "--messages", "20", "--rate", "100", "--json", "-")
	lt.Env = append(os.Environ(), "TAISEN_SERVER_KEY="+key)
	var stdout, stderr bytes.Buffer
	lt.Stdout, lt.Stderr = &stdout, &stderr
	if err := lt.Run(); err != nil {
		t.Fatalf("loadtest: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "latency (publish to receive)") {
		t.Errorf("the summary lacks the delivery latency:\n%s", out)
	}
	var r struct {
		SessionsOK     int      `json:"sessions_ok"`
		Deliveries     *int64   `json:"deliveries"`
		DeliveriesPerS *float64 `json:"deliveries_per_s"`
		Lost           *int64   `json:"lost"`
		Duplicates     *int64   `json:"duplicates"`
		LatencyMS      *struct {
			P50, P90, P99, Max float64
		} `json:"latency_ms"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, out)
	}
	// 20 items over 2 topics of 20 subscribers each: 400 deliveries.
	if r.SessionsOK != 40 || r.Deliveries == nil || *r.Deliveries != 400 || r.Lost == nil || *r.Lost != 0 ||
		r.Duplicates == nil || *r.Duplicates != 0 || r.DeliveriesPerS == nil || *r.DeliveriesPerS <= 0 ||
		r.LatencyMS == nil || r.LatencyMS.P99 <= 0 || r.LatencyMS.P99 > r.LatencyMS.Max {
		t.Fatalf("report = %+v\n%s%s", r, out, stderr.String())
	}
}

func TestLoadtestNotificationScenariosNeedTheKey(t *testing.T) {
	for _, scenario := range []string{"fanout", "notify", "inbox", "disconnect"} {
		cmd := exec.Command(binary, "loadtest", "--scenario", scenario, "--admin", "http://127.0.0.1:1")
		cmd.Env = append(os.Environ(), "TAISEN_SERVER_KEY=")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "scenario "+scenario+" needs the server key") {
			t.Errorf("%s: err %v, output:\n%s", scenario, err, out)
		}
	}
}

// The idle scenario's topics need the notification API, and its follows
// other sessions: the binary says so before connecting anything.
func TestLoadtestIdleSetupFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--topics-per-session", "3"}, "topics per session needs --admin"},
		{[]string{"--topics-per-session", "3", "--admin", "http://127.0.0.1:1"}, "topics per session needs the server key"},
		{[]string{"--topics-per-session", "33"}, "topics per session 33: want 0 to 32"},
		{[]string{"--follows", "100", "--sessions", "100"}, "follows 100: want fewer than the sessions (100)"},
		{[]string{"--follows", "1", "--scenario", "login"}, "topics per session and follows apply to the idle scenario"},
	}
	for _, tt := range tests {
		cmd := exec.Command(binary, append([]string{"loadtest"}, tt.args...)...)
		cmd.Env = append(os.Environ(), "TAISEN_SERVER_KEY=")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), tt.want) {
			t.Errorf("%v: err %v, output:\n%s", tt.args, err, out)
		}
	}
}
