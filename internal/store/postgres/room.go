package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/taisen-dev/taisen/internal/store"
)

const roomResultColumns = `seq, room_id, game, status, result, reason, labels, inputs, created_at, ended_at`

// PutRoomResult implements store.Store.
func (c *conn) PutRoomResult(ctx context.Context, r store.RoomResult) error {
	if err := store.CheckRoomResult(r); err != nil {
		return fmt.Errorf("postgres: put room result: %w", err)
	}
	labels := r.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	lb, err := json.Marshal(labels)
	if err != nil {
		return fmt.Errorf("postgres: put room result: labels: %w", err)
	}
	result := r.Result
	if result == nil {
		result = []byte{}
	}
	err = c.inTx(ctx, func(tx *conn) error {
		var seq int64
		err := tx.q.QueryRow(ctx,
			`INSERT INTO room_results (room_id, game, status, result, reason, labels, inputs, created_at, ended_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq`,
			r.RoomID, r.Game, r.Status, result, r.Reason, string(lb), r.Inputs,
			store.Timestamp(r.CreatedAt), store.Timestamp(r.EndedAt)).Scan(&seq)
		if err != nil {
			return mapErr(err)
		}
		for _, p := range r.Players {
			if _, err := tx.q.Exec(ctx, `INSERT INTO room_result_players (result_seq, seat, user_id) VALUES ($1, $2, $3)`,
				seq, p.Seat, p.UserID); err != nil {
				return mapErr(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: put room result: %w", err)
	}
	return nil
}

func scanRoomResult(row pgx.Row) (store.RoomResult, int64, error) {
	var (
		r      store.RoomResult
		seq    int64
		labels []byte
	)
	if err := row.Scan(&seq, &r.RoomID, &r.Game, &r.Status, &r.Result, &r.Reason, &labels, &r.Inputs, &r.CreatedAt, &r.EndedAt); err != nil {
		return store.RoomResult{}, 0, mapErr(err)
	}
	if err := json.Unmarshal(labels, &r.Labels); err != nil {
		return store.RoomResult{}, 0, err
	}
	if len(r.Labels) == 0 {
		r.Labels = nil
	}
	if len(r.Result) == 0 {
		r.Result = nil
	}
	r.CreatedAt, r.EndedAt = r.CreatedAt.UTC(), r.EndedAt.UTC()
	return r, seq, nil
}

func (c *conn) roomPlayers(ctx context.Context, seq int64) ([]store.RoomPlayer, error) {
	rows, err := c.q.Query(ctx, `SELECT seat, user_id FROM room_result_players WHERE result_seq = $1 ORDER BY seat`, seq)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var ps []store.RoomPlayer
	for rows.Next() {
		var p store.RoomPlayer
		if err := rows.Scan(&p.Seat, &p.UserID); err != nil {
			return nil, mapErr(err)
		}
		ps = append(ps, p)
	}
	return ps, mapErr(rows.Err())
}

// RoomResult implements store.Store.
func (c *conn) RoomResult(ctx context.Context, roomID string) (store.RoomResult, error) {
	r, seq, err := scanRoomResult(c.q.QueryRow(ctx, `SELECT `+roomResultColumns+` FROM room_results WHERE room_id = $1`, roomID))
	if err == nil {
		r.Players, err = c.roomPlayers(ctx, seq)
	}
	if err != nil {
		return store.RoomResult{}, fmt.Errorf("postgres: get room result: %w", err)
	}
	return r, nil
}

// UserRoomResults implements store.Store.
func (c *conn) UserRoomResults(ctx context.Context, userID string, p store.Page) ([]store.RoomResult, string, error) {
	out, next, err := c.userRoomResults(ctx, userID, p)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list room results: %w", err)
	}
	return out, next, nil
}

func (c *conn) userRoomResults(ctx context.Context, userID string, p store.Page) ([]store.RoomResult, string, error) {
	limit, err := p.Size()
	if err != nil {
		return nil, "", err
	}
	before := int64(math.MaxInt64)
	if p.Cursor != "" {
		if before, err = store.DecodeSeqCursor(p.Cursor); err != nil {
			return nil, "", err
		}
	}
	rows, err := c.q.Query(ctx,
		`SELECT r.seq, r.room_id, r.game, r.status, r.result, r.reason, r.labels, r.inputs, r.created_at, r.ended_at
		 FROM room_result_players p JOIN room_results r ON r.seq = p.result_seq
		 WHERE p.user_id = $1 AND p.result_seq < $2 ORDER BY p.result_seq DESC LIMIT $3`, userID, before, limit+1)
	if err != nil {
		return nil, "", mapErr(err)
	}
	var out []store.RoomResult
	var seqs []int64
	for rows.Next() {
		r, seq, err := scanRoomResult(rows)
		if err != nil {
			rows.Close()
			return nil, "", err
		}
		out, seqs = append(out, r), append(seqs, seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", mapErr(err)
	}
	next := ""
	if len(out) > limit {
		out, seqs = out[:limit], seqs[:limit]
		next = store.EncodeSeqCursor(seqs[limit-1])
	}
	for i := range out {
		if out[i].Players, err = c.roomPlayers(ctx, seqs[i]); err != nil {
			return nil, "", err
		}
	}
	return out, next, nil
}
