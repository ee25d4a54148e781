-- Revocable sessions: a per-account session epoch (tokens issued under an
-- older epoch are revoked), the accounts that were deleted (their tokens
-- are refused until they expire), and refresh token families (one per
-- login; single-use tokens with reuse detection).

-- +goose Up
ALTER TABLE accounts ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;

-- Lists the few accounts whose sessions are restricted without scanning
-- every account (the query repeats this predicate).
CREATE INDEX accounts_restricted_idx ON accounts (id)
    WHERE session_epoch > 0 OR disabled_at IS NOT NULL;

CREATE TABLE deleted_accounts (
    account_id TEXT PRIMARY KEY,
    deleted_at TEXT NOT NULL
) STRICT;

CREATE TABLE refresh_families (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- generation is the one refresh token of the chain still usable.
    generation INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    used_at    TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;

CREATE INDEX refresh_families_account_id_idx ON refresh_families (account_id);
CREATE INDEX refresh_families_revoked_at_idx ON refresh_families (revoked_at)
    WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_families_expires_at_idx ON refresh_families (expires_at);

-- +goose Down
DROP TABLE refresh_families;
DROP TABLE deleted_accounts;
DROP INDEX accounts_restricted_idx;
ALTER TABLE accounts DROP COLUMN session_epoch;
