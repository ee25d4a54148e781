package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveNode runs `taisen serve` on free ports and waits until it is ready.
func serveNode(t *testing.T, args ...string) (client, admin, dataDir string) {
	t.Helper()
	dataDir = filepath.Join(t.TempDir(), "data")
	client, admin = freeAddr(t), freeAddr(t)
	serve(t, nil, append([]string{"--data", dataDir, "--client-addr", client, "--admin-addr", admin}, args...)...)
	return client, admin, dataDir
}

// runTaisen runs the binary and returns its stdout, stderr and exit code.
func runTaisen(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cmd.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func TestNodesCommand(t *testing.T) {
	client, admin, dataDir := serveNode(t, "--node-id", "cli-node-1", "--node-heartbeat", "200ms")
	adminURL := "http://" + admin

	// --json: a JSON array of records with proto field names; the key
	// comes from the data directory.
	var recs []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, errOut, code := runTaisen(t, nil, "nodes", "--admin", adminURL, "--data", dataDir, "--json")
		if code != 0 {
			t.Fatalf("taisen nodes --json: exit %d\n%s%s", code, out, errOut)
		}
		if err := json.Unmarshal([]byte(out), &recs); err != nil {
			t.Fatalf("output is not a JSON array: %v\n%s", err, out)
		}
		if len(recs) == 1 && recs[0]["ready"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not listed ready within 10s:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := recs[0]
	endpoints, _ := r["endpoints"].(map[string]any)
	if r["node_id"] != "cli-node-1" || r["draining"] != false || r["sessions"] != 0.0 || r["version"] != version ||
		endpoints["client"] != client || endpoints["admin"] != admin {
		t.Errorf("record %v", r)
	}
	for _, field := range []string{"roles", "client_versions", "sockets", "detached_sessions", "epoll_loops", "started_at", "updated_at"} {
		if _, ok := r[field]; !ok {
			t.Errorf("record lacks %q: %v", field, r)
		}
	}

	// The table, with the key from the environment.
	key, err := findServerKey("", func(string) string { return "" }, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runTaisen(t, []string{"TAISEN_SERVER_KEY=" + key}, "nodes", "--admin", adminURL, "--data", "/nonexistent")
	if code != 0 || !strings.Contains(out, "NODE") || !strings.Contains(out, "cli-node-1") || !strings.Contains(out, "ready") || !strings.Contains(out, client) {
		t.Errorf("table: exit %d\n%s%s", code, out, errOut)
	}

	_, errOut, code = runTaisen(t, nil, "nodes", "--help")
	if code != 0 || !strings.Contains(errOut, "-json") {
		t.Errorf("nodes --help: exit %d", code)
	}

	// A wrong key and a dead admin URL are explained.
	_, errOut, code = runTaisen(t, nil, "nodes", "--admin", adminURL, "--server-key", "wrong-key-wrong-key")
	if code != 1 || !strings.Contains(errOut, "refused the server key") {
		t.Errorf("wrong key: exit %d: %s", code, errOut)
	}
	_, errOut, code = runTaisen(t, nil, "nodes", "--admin", "http://"+freeAddr(t), "--server-key", key)
	if code != 1 || !strings.Contains(errOut, "cannot list nodes") {
		t.Errorf("nobody there: exit %d: %s", code, errOut)
	}
}
