-- Accounts and the credentials that authenticate them.
--
-- Timestamps are TEXT in the fixed-width UTC layout
-- 2006-01-02T15:04:05.000Z, so they sort and compare as strings and
-- SQLite's date functions read them.

-- +goose Up
CREATE TABLE accounts (
    id           TEXT PRIMARY KEY,
    username     TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    disabled_at  TEXT
) STRICT;

CREATE TABLE credentials (
    kind       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    secret     TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, subject)
) STRICT;

CREATE INDEX credentials_account_id_idx ON credentials (account_id);

-- +goose Down
DROP TABLE credentials;
DROP TABLE accounts;
