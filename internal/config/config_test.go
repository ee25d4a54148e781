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
