package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binary string

// TestMain builds the real binary once; the tests run it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "taisen-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "taisen")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestHelp(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"--help"}, 0, "Commands:"},
		{[]string{"serve", "--help"}, 0, "-client-addr"},
		{[]string{"loadtest", "--help"}, 0, "-scenario"},
		{[]string{"push", "--help"}, 0, "USER KIND [PAYLOAD]"},
		{[]string{"serve", "--max-in-flight", "0"}, 1, "max-in-flight 0: want 1..1024"},
		{[]string{"config"}, 0, "TAISEN_CLIENT_ADDR"},
		{[]string{"version"}, 0, "taisen"},
		{[]string{"nonsense"}, 2, "unknown command"},
		{nil, 2, "Usage"},
		{[]string{"serve", "--idle-timeout", "soon"}, 1, "want a duration"},
		{[]string{"loadtest", "--sessions", "50000"}, 1, "19000"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := exec.Command(binary, tt.args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || !strings.Contains(out.String(), tt.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and %q", code, out.String(), tt.wantCode, tt.want)
			}
		})
	}
}

// TestHelpIsTrue: the top-level help lists every command and promises
// nothing that is not built yet.
func TestHelpIsTrue(t *testing.T) {
	var out bytes.Buffer
	usage(&out)
	for _, c := range commands() {
		if !strings.Contains(out.String(), "  "+c.name+" ") {
			t.Errorf("help lacks the command %s", c.name)
		}
	}
	for _, notYet := range []string{"matchmak", "room", "meta service", "leaderboard", "wallet"} {
		if strings.Contains(strings.ToLower(out.String()), notYet) {
			t.Errorf("help advertises %q, which does not exist yet:\n%s", notYet, out.String())
		}
	}
}

// serve starts `taisen serve` with args (which name --admin-addr) and the
// extra environment, kills it when the test ends, and returns once its
// /readyz answers; logs collects the node's output (read it after the
// process ended, or for a failure message).
func serve(t *testing.T, env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	admin := ""
	for i, a := range args {
		if a == "--admin-addr" && i+1 < len(args) {
			admin = args[i+1]
		}
	}
	if admin == "" {
		t.Fatal("serve: args need --admin-addr")
	}
	logs := &bytes.Buffer{}
	srv := exec.Command(binary, append([]string{"serve"}, args...)...)
	srv.Env = append(os.Environ(), env...)
	srv.Stdout, srv.Stderr = logs, logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _, _ = srv.Process.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return srv, logs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not ready:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeLoadtestDrain runs the two commands of the README against each
// other: a node with zero setup, a small swarm, then SIGTERM → exit 0.
func TestServeLoadtestDrain(t *testing.T) {
	dir := t.TempDir()
	client, admin := freeAddr(t), freeAddr(t)
	srv, logs := serve(t, nil, "--data", filepath.Join(dir, "data"), "--client-addr", client, "--admin-addr", admin)
	for _, f := range []string{"server.key", "token.secret"} {
		fi, err := os.Stat(filepath.Join(dir, "data", f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", f, err, fi.Mode().Perm())
		}
	}

	report := filepath.Join(dir, "report.json")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lt := exec.CommandContext(ctx, binary, "loadtest", "--target", "http://"+client, "--admin", "http://"+admin,
		"--scenario", "idle", "--sessions", "40", "--duration", "2s", "--settle", "1s", "--rpc-rate", "50", "--json", report)
	out, err := lt.CombinedOutput()
	if err != nil {
		t.Fatalf("loadtest: %v\n%s", err, out)
	}
	var r struct {
		Scenario   string  `json:"scenario"`
		SessionsOK int     `json:"sessions_ok"`
		Errors     int     `json:"errors"`
		Rate       float64 `json:"connect_rate_per_s"`
		Latency    struct {
			P50, P90, P99, Max float64
		} `json:"latency_ms"`
	}
	raw, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if r.Scenario != "idle" || r.SessionsOK != 40 || r.Errors != 0 || r.Rate <= 0 || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 || r.Latency.Max < r.Latency.P99 {
		t.Errorf("report = %+v\n%s", r, raw)
	}

	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	_, _ = metrics.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"process_resident_memory_bytes", "go_goroutines", "taisen_sessions_active", "taisen_sessions_opened_total 40", "taisen_session_closes_total", "taisen_log_dropped_total", `taisen_rpc_duration_seconds_count{rpc="taisen.echo"}`} {
		if !strings.Contains(metrics.String(), m) {
			t.Errorf("metrics lack %q", m)
		}
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM:\n%s", err, logs.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("serve did not exit after SIGTERM:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "drained") {
		t.Errorf("no drain in the logs:\n%s", logs.String())
	}
}

// TestREADMEConfigTable keeps the README's configuration reference equal
// to what `taisen config` prints.
func TestREADMEConfigTable(t *testing.T) {
	out, err := exec.Command(binary, "config").Output()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "|") && !strings.Contains(string(readme), line) {
			t.Errorf("README.md lacks the config line %q (paste the output of `taisen config`)", line)
		}
	}
}

// TestREADMEChromiumHint keeps the README's install hint equal to the one
// scripts/browser-test.sh prints when it skips.
func TestREADMEChromiumHint(t *testing.T) {
	script, err := os.ReadFile("../../scripts/browser-test.sh")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var hints int
	for _, line := range strings.Split(string(script), "\n") {
		// echo "  sudo apt-get ..." >&2
		if !strings.Contains(line, `echo "  sudo`) {
			continue
		}
		hint := strings.TrimSpace(strings.SplitN(line, `"`, 3)[1])
		hints++
		if !strings.Contains(string(readme), "\n"+hint+"\n") {
			t.Errorf("README.md lacks the line %q of browser-test.sh's hint", hint)
		}
	}
	if hints == 0 {
		t.Fatal("no install hint found in scripts/browser-test.sh")
	}
}

// TestDocsSayWhatThingsAre: the docs name things, not the tickets or
// design seeds they came from.
func TestDocsSayWhatThingsAre(t *testing.T) {
	for _, f := range []string{"../../README.md", "../../docs/operations.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"seed 0", "issue #"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s says %q: say what the thing is", f, bad)
			}
		}
	}
}

// TestREADMEScalingOutSharesTheTokenSecret: the two-node example must give
// both nodes the same token secret, or tokens of one are refused by the
// other.
func TestREADMEScalingOutSharesTheTokenSecret(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "### Scaling out")
	if i < 0 {
		t.Fatal("README has no Scaling out section")
	}
	section := s[i:]
	if j := strings.Index(section[1:], "\n##"); j > 0 {
		section = section[:j+1]
	}
	exp := strings.Index(section, "export TAISEN_TOKEN_SECRET=")
	first := strings.Index(section, "serve ")
	if exp < 0 || first < exp || strings.Contains(section, "--token-secret") {
		t.Errorf("the example must export one TAISEN_TOKEN_SECRET before starting the nodes:\n%s", section)
	}
}
