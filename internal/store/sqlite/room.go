package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/taisen-dev/taisen/internal/store"
)

const roomResultColumns = `seq, room_id, game, status, result, reason, labels, inputs, created_at, ended_at`

// PutRoomResult implements store.Store.
func (c *conn) PutRoomResult(ctx context.Context, r store.RoomResult) error {
	if err := store.CheckRoomResult(r); err != nil {
		return fmt.Errorf("sqlite: put room result: %w", err)
	}
	labels, err := json.Marshal(orEmpty(r.Labels))
	if err != nil {
		return fmt.Errorf("sqlite: put room result: labels: %w", err)
	}
	err = c.inTx(ctx, func(tx *conn) error {
		var seq int64
		err := tx.write.QueryRowContext(ctx,
			`INSERT INTO room_results (room_id, game, status, result, reason, labels, inputs, created_at, ended_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
			r.RoomID, r.Game, r.Status, blob(r.Result), r.Reason, string(labels), r.Inputs,
			formatTime(store.Timestamp(r.CreatedAt)), formatTime(store.Timestamp(r.EndedAt))).Scan(&seq)
		if err != nil {
			return mapErr(err)
		}
		for _, p := range r.Players {
			if _, err := tx.write.ExecContext(ctx, `INSERT INTO room_result_players (result_seq, seat, user_id) VALUES (?, ?, ?)`,
				seq, p.Seat, p.UserID); err != nil {
				return mapErr(err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: put room result: %w", err)
	}
	return nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func (c *conn) scanRoomResult(ctx context.Context, row scanner) (store.RoomResult, int64, error) {
	var (
		r                store.RoomResult
		seq              int64
		labels           string
		created, ended   string
		errCreated, errE error
	)
	if err := row.Scan(&seq, &r.RoomID, &r.Game, &r.Status, &r.Result, &r.Reason, &labels, &r.Inputs, &created, &ended); err != nil {
		return store.RoomResult{}, 0, mapErr(err)
	}
	r.CreatedAt, errCreated = parseTime(created)
	r.EndedAt, errE = parseTime(ended)
	if err := errors.Join(errCreated, errE, json.Unmarshal([]byte(labels), &r.Labels)); err != nil {
		return store.RoomResult{}, 0, err
	}
	if len(r.Labels) == 0 {
		r.Labels = nil
	}
	if len(r.Result) == 0 {
		r.Result = nil
	}
	return r, seq, nil
}

func (c *conn) roomPlayers(ctx context.Context, seq int64) ([]store.RoomPlayer, error) {
	rows, err := c.read.QueryContext(ctx, `SELECT seat, user_id FROM room_result_players WHERE result_seq = ? ORDER BY seat`, seq)
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
	r, seq, err := c.scanRoomResult(ctx, c.read.QueryRowContext(ctx, `SELECT `+roomResultColumns+` FROM room_results WHERE room_id = ?`, roomID))
	if err == nil {
		r.Players, err = c.roomPlayers(ctx, seq)
	}
	if err != nil {
		return store.RoomResult{}, fmt.Errorf("sqlite: get room result: %w", err)
	}
	return r, nil
}

// UserRoomResults implements store.Store.
func (c *conn) UserRoomResults(ctx context.Context, userID string, p store.Page) ([]store.RoomResult, string, error) {
	out, next, err := c.userRoomResults(ctx, userID, p)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list room results: %w", err)
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
	rows, err := c.read.QueryContext(ctx,
		`SELECT r.seq, r.room_id, r.game, r.status, r.result, r.reason, r.labels, r.inputs, r.created_at, r.ended_at
		 FROM room_result_players p JOIN room_results r ON r.seq = p.result_seq
		 WHERE p.user_id = ? AND p.result_seq < ? ORDER BY p.result_seq DESC LIMIT ?`, userID, before, limit+1)
	if err != nil {
		return nil, "", mapErr(err)
	}
	var out []store.RoomResult
	var seqs []int64
	for rows.Next() {
		r, seq, err := c.scanRoomResult(ctx, rows)
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
