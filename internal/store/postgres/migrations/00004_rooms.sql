-- Rooms: the results of ended rooms and who played in them. Ids use the
-- "C" collation, as elsewhere.

-- +goose Up

-- seq orders results by the time they were stored (listings, newest
-- first); labels are a JSON object.
CREATE TABLE room_results (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id    text COLLATE "C" NOT NULL UNIQUE,
    game       text NOT NULL,
    status     text NOT NULL,
    result     bytea NOT NULL,
    reason     text NOT NULL,
    labels     jsonb NOT NULL,
    inputs     bigint NOT NULL,
    created_at timestamptz NOT NULL,
    ended_at   timestamptz NOT NULL
);

CREATE TABLE room_result_players (
    result_seq bigint NOT NULL REFERENCES room_results (seq) ON DELETE CASCADE,
    seat       integer NOT NULL,
    user_id    text COLLATE "C" NOT NULL,
    PRIMARY KEY (result_seq, seat)
);

-- A user's results, newest first.
CREATE INDEX room_result_players_user_idx ON room_result_players (user_id, result_seq);

-- +goose Down
DROP TABLE room_result_players;
DROP TABLE room_results;
