-- Accounts and the credentials that authenticate them.
--
-- Tables are created unqualified, in the first existing schema of the
-- connection's search_path (the schema Open migrates). Credentials use the
-- "C" collation so that they list in byte order, as in SQLite, whatever the
-- database's locale.

-- +goose Up
CREATE TABLE accounts (
    id           text PRIMARY KEY,
    username     text NOT NULL UNIQUE,
    display_name text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    disabled_at  timestamptz
);

CREATE TABLE credentials (
    kind       text COLLATE "C" NOT NULL,
    subject    text COLLATE "C" NOT NULL,
    account_id text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    secret     text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    PRIMARY KEY (kind, subject)
);

CREATE INDEX credentials_account_id_idx ON credentials (account_id);

-- +goose Down
DROP TABLE credentials;
DROP TABLE accounts;
