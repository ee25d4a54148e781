-- Notifications: the users' inboxes of kept notifications, topics, their
-- subscriptions and the items they retain.

-- +goose Up

-- inbox_items holds pending items and, once acknowledged, deleted
-- (removed_at set) or expired, their tombstones, which keep (user_id, id)
-- taken for the de-duplication window until PruneInbox deletes them.
-- seq orders a user's items: AUTOINCREMENT never reuses a value, and the
-- one writer makes insert order the commit order.
CREATE TABLE inbox_items (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      TEXT NOT NULL,
    id           TEXT NOT NULL,
    subject      TEXT NOT NULL,
    content      BLOB NOT NULL,
    content_type TEXT NOT NULL,
    sender       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    removed_at   TEXT,
    UNIQUE (user_id, id)
) STRICT;

-- Lists a user's pending items in order without reading tombstones.
CREATE INDEX inbox_items_pending_idx ON inbox_items (user_id, seq)
    WHERE removed_at IS NULL;
-- PruneInbox finds old tombstones and expired items.
CREATE INDEX inbox_items_removed_at_idx ON inbox_items (removed_at)
    WHERE removed_at IS NOT NULL;
CREATE INDEX inbox_items_expires_at_idx ON inbox_items (expires_at)
    WHERE expires_at IS NOT NULL;

-- subscribers counts topic_subscriptions rows and last_seq is the seq of
-- the last item inserted; both change only in the transactions that
-- change those rows.
CREATE TABLE topics (
    name                  TEXT PRIMARY KEY,
    retain                INTEGER NOT NULL,
    clients_may_subscribe INTEGER NOT NULL,
    max_subscribers       INTEGER NOT NULL,
    subscribers           INTEGER NOT NULL DEFAULT 0,
    last_seq              INTEGER NOT NULL DEFAULT 0,
    created_at            TEXT NOT NULL
) STRICT;

CREATE TABLE topic_subscriptions (
    topic   TEXT NOT NULL REFERENCES topics (name) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    PRIMARY KEY (topic, user_id)
) STRICT, WITHOUT ROWID;

-- UserTopics: a user's topics by name.
CREATE INDEX topic_subscriptions_user_id_idx ON topic_subscriptions (user_id, topic);

CREATE TABLE topic_items (
    topic        TEXT NOT NULL REFERENCES topics (name) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL,
    subject      TEXT NOT NULL,
    content      BLOB NOT NULL,
    content_type TEXT NOT NULL,
    sender       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    PRIMARY KEY (topic, seq),
    UNIQUE (topic, id)
) STRICT;

-- +goose Down
DROP TABLE topic_items;
DROP TABLE topic_subscriptions;
DROP TABLE topics;
DROP TABLE inbox_items;
