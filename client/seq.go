package client

import (
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
)

// welcomeOutcome is what a Welcome means for the pushes the application
// has seen.
type welcomeOutcome uint8

const (
	// outcomeConnected: a first session, nothing was asked to resume.
	outcomeConnected welcomeOutcome = iota
	// outcomeResumed: the session continues; missed pushes follow.
	outcomeResumed
	// outcomeReset: a resume was asked for but a fresh session started;
	// seq restarts at 1 and the application must reload its state.
	outcomeReset
)

// seqTracker remembers the session and the highest push seq delivered to
// the application, so that a push is never delivered twice, also across
// resumes. It is not safe for concurrent use.
type seqTracker struct {
	session string
	last    uint64
}

// resumeFrom returns what to put in Hello to resume: the session id and
// last seq, or "" and 0 when there is nothing to resume.
func (t *seqTracker) resumeFrom() (string, uint64) { return t.session, t.last }

// welcome applies a Welcome and reports what it means.
func (t *seqTracker) welcome(w *realtimev1.Welcome) welcomeOutcome {
	asked := t.session != ""
	if asked && w.GetResumed() && w.GetSessionId() == t.session {
		return outcomeResumed
	}
	t.session = w.GetSessionId()
	t.last = 0
	if asked {
		return outcomeReset
	}
	return outcomeConnected
}

// accept reports whether a push with seq should be delivered: false for a
// duplicate (seq at or below the last delivered one). gap is set when seq
// skips numbers, which means pushes were lost.
func (t *seqTracker) accept(seq uint64) (ok, gap bool) {
	if seq <= t.last {
		return false, false
	}
	return true, seq != t.last+1
}

// delivered records that the push with seq reached the application.
func (t *seqTracker) delivered(seq uint64) {
	if seq > t.last {
		t.last = seq
	}
}
