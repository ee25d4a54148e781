package config

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return Load(fs, args, func(k string) string { return env[k] })
}

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "taisen.json")
	if err := os.WriteFile(file, []byte(`{"client-addr": "127.0.0.1:1000", "admin-addr": "127.0.0.1:1001", "data": "/from/file", "max-in-flight": 4, "idle-timeout": "90s"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantClient string
		wantData   string
		wantAdmin  string
	}{
		{"defaults", nil, nil, "127.0.0.1:7350", "./taisen-data", "127.0.0.1:7351"},
		{"file", []string{"--config", file}, nil, "127.0.0.1:1000", "/from/file", "127.0.0.1:1001"},
		{"env over file", []string{"--config", file}, map[string]string{"TAISEN_CLIENT_ADDR": "127.0.0.1:2000"}, "127.0.0.1:2000", "/from/file", "127.0.0.1:1001"},
		{"flag over env", []string{"--config", file, "--client-addr", "127.0.0.1:3000"}, map[string]string{"TAISEN_CLIENT_ADDR": "127.0.0.1:2000"}, "127.0.0.1:3000", "/from/file", "127.0.0.1:1001"},
		{"file from env", nil, map[string]string{"TAISEN_CONFIG": file, "TAISEN_DATA": "/env"}, "127.0.0.1:1000", "/env", "127.0.0.1:1001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.ClientAddr != tt.wantClient || c.DataDir != tt.wantData || c.AdminAddr != tt.wantAdmin {
				t.Errorf("got client=%s data=%s admin=%s, want %s %s %s", c.ClientAddr, c.DataDir, c.AdminAddr, tt.wantClient, tt.wantData, tt.wantAdmin)
			}
		})
	}
	c, err := load(t, []string{"--config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.MaxInFlight != 4 || c.Gateway.IdleTimeout != 90*time.Second {
		t.Errorf("file numbers: max-in-flight=%d idle=%v", c.Gateway.MaxInFlight, c.Gateway.IdleTimeout)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"no-such-setting": 1}`), 0o600)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"bad duration flag", []string{"--idle-timeout", "soon"}, nil, "want a duration"},
		{"bad int env", nil, map[string]string{"TAISEN_MAX_IN_FLIGHT": "many"}, "TAISEN_MAX_IN_FLIGHT"},
		{"unknown file key", []string{"--config", bad}, nil, "unknown setting"},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.json")}, nil, "config file"},
		{"bad addr", []string{"--client-addr", "nowhere"}, nil, "want HOST:PORT"},
		{"same addrs", []string{"--client-addr", "127.0.0.1:9", "--admin-addr", "127.0.0.1:9"}, nil, "must differ"},
		{"short key", []string{"--server-key", "abc"}, nil, "server-key"},
		{"short token secret", nil, map[string]string{"TAISEN_TOKEN_SECRET": "short"}, "token-secret"},
		{"bad db", []string{"--database-url", "mysql://x"}, nil, "database-url"},
		{"tls half", []string{"--tls-cert", "a.pem"}, nil, "tls-cert and tls-key"},
		{"stray args", []string{"extra"}, nil, "unexpected arguments"},
		{"cors path", []string{"--cors-origins", "https://game.example.com/play"}, nil, "no path"},
		{"cors scheme", []string{"--cors-origins", "game.example.com"}, nil, "cors-origins"},
		{"nats both", []string{"--nats-url", "nats://x", "--nats-listen", "127.0.0.1:4222"}, nil, "nats-listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.args, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestReferenceListsEveryFlag(t *testing.T) {
	var buf bytes.Buffer
	WriteReference(&buf)
	c := Defaults()
	for _, f := range fields(&c) {
		if !strings.Contains(buf.String(), "`--"+f.name+"`") || !strings.Contains(buf.String(), Env(f.name)) {
			t.Errorf("reference misses %s", f.name)
		}
	}
}

// TestBounds refuses a value just outside every bound the reference
// states, naming the setting; every bounded setting must have a case here.
func TestBounds(t *testing.T) {
	tests := []struct{ flag, value string }{
		{"log-queue", "0"},
		{"http-timeout", "999ms"},
		{"max-body-bytes", "1023"},
		{"max-body-bytes", "16777217"},
		{"drain-timeout", "-1s"},
		{"max-frame-bytes", "255"},
		{"max-frame-bytes", "16777217"},
		{"max-in-flight", "0"},
		{"max-in-flight", "1025"},
		{"rate-limit", "0"},
		{"rate-burst", "0"},
		{"send-rate", "0"},
		{"send-burst", "0"},
		{"max-violations", "0"},
		{"auth-timeout", "0s"},
		{"heartbeat-interval", "0s"},
		{"idle-timeout", "0s"},
		{"resume-grace", "0s"},
		{"resume-buffer", "0"},
		{"outbound-queue-bytes", "0"},
		{"write-timeout", "0s"},
		{"session-ttl", "2s"},
		{"kv-replicas", "0"},
		{"kv-replicas", "6"},
		{"workers", "0"},
		{"max-unauth-sockets", "0"},
		{"max-unauth-per-ip", "0"},
		{"node-heartbeat", "50ms"},
		{"node-heartbeat", "2m"},
		{"token-ttl", "59s"},
		{"refresh-ttl", "0s"},
	}
	tested := map[string]bool{}
	for _, tt := range tests {
		tested[tt.flag] = true
		t.Run(tt.flag+"="+tt.value, func(t *testing.T) {
			_, err := load(t, []string{"--" + tt.flag, tt.value}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.flag) {
				t.Errorf("err = %v, want it to refuse %s", err, tt.flag)
			}
		})
	}
	c := Defaults()
	for _, f := range fields(&c) {
		if f.check != nil && !tested[f.name] {
			t.Errorf("%s has a bound but no case in TestBounds", f.name)
		}
	}
}

func TestRelatedRules(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--idle-timeout", "25s"}, "idle-timeout 25s must be longer than heartbeat-interval"},
		{[]string{"--max-unauth-sockets", "10", "--max-unauth-per-ip", "11"}, "max-unauth-per-ip 11 must be at most max-unauth-sockets 10"},
		{[]string{"--outbound-queue-bytes", "1000"}, "outbound-queue-bytes 1000 must be at least max-frame-bytes"},
		{[]string{"--session-ttl", "10s"}, "session-ttl 10s must be at least resume-grace"},
		{[]string{"--refresh-ttl", "30m"}, "refresh-ttl 30m0s must be at least token-ttl"},
		{[]string{"--gc-percent", "1001"}, "gc-percent"},
	}
	for _, tt := range tests {
		_, err := load(t, tt.args, nil)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.wantErr)
		}
	}
	var buf bytes.Buffer
	WriteReference(&buf)
	for name, rule := range relatedRules {
		if !strings.Contains(buf.String(), rule) {
			t.Errorf("the reference does not state %s: %s", name, rule)
		}
	}
}

func TestBoolSettings(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantPprof bool
	}{
		{"default off", nil, nil, false},
		{"bare flag", []string{"--pprof"}, nil, true},
		{"flag false over env", []string{"--pprof=false"}, map[string]string{"TAISEN_PPROF": "true"}, false},
		{"env", nil, map[string]string{"TAISEN_PPROF": "1"}, true},
	}
	for _, tt := range tests {
		c, err := load(t, tt.args, tt.env)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if c.Pprof != tt.wantPprof {
			t.Errorf("%s: pprof %v, want %v", tt.name, c.Pprof, tt.wantPprof)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "taisen.json")
	if err := os.WriteFile(file, []byte(`{"metrics-auth": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := load(t, []string{"--config", file}, nil); err != nil || !c.MetricsAuth {
		t.Errorf("metrics-auth from the file: %v %v", c.MetricsAuth, err)
	}
	if _, err := load(t, nil, map[string]string{"TAISEN_METRICS_AUTH": "maybe"}); err == nil || !strings.Contains(err.Error(), "want true or false") {
		t.Errorf("bad bool: %v", err)
	}
}
