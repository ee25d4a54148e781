-- Rooms: the results of ended rooms and who played in them.

-- +goose Up

-- seq orders results by the time they were stored (listings, newest
-- first); labels are a JSON object.
CREATE TABLE room_results (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id    TEXT NOT NULL UNIQUE,
    game       TEXT NOT NULL,
    status     TEXT NOT NULL,
    result     BLOB NOT NULL,
    reason     TEXT NOT NULL,
    labels     TEXT NOT NULL,
    inputs     INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    ended_at   TEXT NOT NULL
) STRICT;

CREATE TABLE room_result_players (
    result_seq INTEGER NOT NULL REFERENCES room_results (seq) ON DELETE CASCADE,
    seat       INTEGER NOT NULL,
    user_id    TEXT NOT NULL,
    PRIMARY KEY (result_seq, seat)
) STRICT;

-- A user's results, newest first.
CREATE INDEX room_result_players_user_idx ON room_result_players (user_id, result_seq);

-- +goose Down
DROP TABLE room_result_players;
DROP TABLE room_results;
