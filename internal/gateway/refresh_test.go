package gateway

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRefreshFailureIsCountedAndRetried(t *testing.T) {
	g, err := New(Config{NodeID: "n1", Engine: "goroutine"}, Deps{Bus: nilBus{}, Auth: refuseAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	g.kv = downKV{}
	s := &Session{id: "s1", userID: "u1", kvRev: 3, state: sessLive}
	if err := g.refresh(context.Background(), s); err == nil {
		t.Error("refresh on a failing bus reported success")
	}
	if got := testutil.ToFloat64(g.metrics.refreshFails); got != 1 {
		t.Errorf("refresh failures = %v, want 1", got)
	}
	if s.state != sessLive {
		t.Error("a bus failure must not end the session")
	}
	if s.refreshAt == 0 {
		t.Error("the refresh was not rescheduled")
	}
}
