package notify

import (
	"context"
	"errors"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	clusterv1 "github.com/taisen-dev/taisen/gen/go/taisen/cluster/v1"
	"github.com/taisen-dev/taisen/internal/apierr"
	"github.com/taisen-dev/taisen/internal/gateway"
)

// presenceOf derives a user's presence from the session record (nil: no
// record, offline).
func presenceOf(user string, rec *clusterv1.SessionRecord) *apiv1.Presence {
	if rec == nil {
		return &apiv1.Presence{UserId: user, State: apiv1.PresenceState_PRESENCE_STATE_OFFLINE}
	}
	p := &apiv1.Presence{UserId: user, State: apiv1.PresenceState_PRESENCE_STATE_ONLINE, SinceMs: rec.SinceMs}
	if rec.StatusSinceMs != 0 {
		p.SinceMs = rec.StatusSinceMs
	}
	if rec.Playing {
		p.State = apiv1.PresenceState_PRESENCE_STATE_PLAYING
		p.Activity = rec.Activity
	}
	return p
}

// GetPresence reads the presence of users from their session records.
func (s *Service) GetPresence(ctx context.Context, users []string) ([]*apiv1.Presence, error) {
	if err := validateUsers(users); err != nil {
		return nil, err
	}
	ps, _, err := s.presences(ctx, users)
	return ps, err
}

// presences reads users' records; a record naming a node that is not
// alive (it stopped without a word; the record waits for its TTL) reads
// as offline. It also returns the node of each online user.
func (s *Service) presences(ctx context.Context, users []string) ([]*apiv1.Presence, []string, error) {
	out := make([]*apiv1.Presence, len(users))
	nodes := make([]string, len(users))
	errs := make([]error, len(users))
	s.each(users, func(i int, u string) {
		rec, err := s.gw.Lookup(ctx, u)
		if err != nil && !errors.Is(err, gateway.ErrOffline) {
			errs[i] = err
			return
		}
		out[i] = presenceOf(u, rec)
		if rec != nil {
			nodes[i] = rec.NodeId
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	if s.liveNodes != nil {
		live, err := s.liveNodes(ctx)
		if err != nil {
			return nil, nil, err
		}
		for i, p := range out {
			if live == nil {
				break // not known yet: every node counts as alive
			}
			if nodes[i] != "" && !live[nodes[i]] {
				out[i] = presenceOf(p.UserId, nil)
				nodes[i] = ""
			}
		}
	}
	return out, nodes, nil
}

// SetStatus is the socket operation presence.status.set: the status goes
// into the session's record, where every node reads it.
func (s *Service) SetStatus(ctx context.Context, call gateway.Call, req *apiv1.SetStatusRequest) (*apiv1.SetStatusResponse, error) {
	if len(req.Activity) > maxActivityLen {
		return nil, apierr.BadRequest("activity: at most %d characters", maxActivityLen)
	}
	rec, err := s.gw.SetStatus(ctx, call.SessionID, req.Playing, req.Activity)
	if err != nil {
		return nil, err
	}
	p := presenceOf(call.UserID, rec)
	s.announcePresence(ctx, p, rec.NodeId)
	return &apiv1.SetStatusResponse{Presence: p}, nil
}
