package gateway

import (
	"testing"

	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

func TestPushRing(t *testing.T) {
	var r pushRing
	for seq := uint64(1); seq <= 10; seq++ {
		r.add(&realtimev1.Push{Seq: seq, Payload: make([]byte, 8)}, 4, 1<<20)
	}
	tests := []struct {
		last         uint64
		wantFirst    uint64
		wantN        int
		wantComplete bool
	}{
		{10, 0, 0, true},
		{9, 10, 1, true},
		{6, 7, 4, true},
		{5, 0, 0, false}, // 6 was evicted
		{11, 0, 0, false},
	}
	for _, tt := range tests {
		got, complete := r.after(tt.last, 10)
		if complete != tt.wantComplete || len(got) != tt.wantN {
			t.Errorf("after(%d) = %d pushes complete=%v, want %d complete=%v", tt.last, len(got), complete, tt.wantN, tt.wantComplete)
			continue
		}
		if tt.wantN > 0 && got[0].Seq != tt.wantFirst {
			t.Errorf("after(%d) starts at %d, want %d", tt.last, got[0].Seq, tt.wantFirst)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq != got[i-1].Seq+1 {
				t.Errorf("after(%d): seq %d follows %d", tt.last, got[i].Seq, got[i-1].Seq)
			}
		}
	}
}

func TestPushRingBytes(t *testing.T) {
	var r pushRing
	for seq := uint64(1); seq <= 5; seq++ {
		r.add(&realtimev1.Push{Seq: seq, Payload: make([]byte, 100)}, 100, 300)
	}
	if r.n != 2 {
		t.Fatalf("held %d pushes, want 2 under a 300-byte bound", r.n)
	}
	if _, complete := r.after(3, 5); !complete {
		t.Error("after(3) should be complete")
	}
	if _, complete := r.after(2, 5); complete {
		t.Error("after(2) should be incomplete")
	}
	var empty pushRing
	if _, complete := empty.after(0, 0); !complete {
		t.Error("empty ring at seq 0 should be complete")
	}
}
