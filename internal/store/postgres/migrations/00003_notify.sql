-- Notifications: the users' inboxes of kept notifications, topics, their
-- subscriptions and the items they retain. Names and user ids use the "C"
-- collation so that they list in byte order, as in SQLite.

-- +goose Up

-- inbox_users holds the last seq given to an item of each user. PutInbox
-- takes it with the row locked until commit, so a user's items commit in
-- seq order and a listing cursor never passes an item committed later.
-- Rows are kept: seqs never restart.
CREATE TABLE inbox_users (
    user_id  text COLLATE "C" PRIMARY KEY,
    last_seq bigint NOT NULL
);

-- inbox_items holds pending items and, once acknowledged, deleted
-- (removed_at set) or expired, their tombstones, which keep (user_id, id)
-- taken for the de-duplication window until PruneInbox deletes them.
CREATE TABLE inbox_items (
    user_id      text COLLATE "C" NOT NULL,
    id           text COLLATE "C" NOT NULL,
    seq          bigint NOT NULL,
    subject      text NOT NULL,
    content      bytea NOT NULL,
    content_type text NOT NULL,
    sender       text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    removed_at   timestamptz,
    PRIMARY KEY (user_id, id)
);

-- Lists a user's pending items in order without reading tombstones.
CREATE INDEX inbox_items_pending_idx ON inbox_items (user_id, seq)
    WHERE removed_at IS NULL;
-- PruneInbox finds old tombstones and expired items.
CREATE INDEX inbox_items_removed_at_idx ON inbox_items (removed_at)
    WHERE removed_at IS NOT NULL;
CREATE INDEX inbox_items_expires_at_idx ON inbox_items (expires_at)
    WHERE expires_at IS NOT NULL;

-- subscribers counts topic_subscriptions rows and last_seq is the seq of
-- the last item inserted; both change only in transactions that hold the
-- topic's row lock.
CREATE TABLE topics (
    name                  text COLLATE "C" PRIMARY KEY,
    retain                integer NOT NULL,
    clients_may_subscribe boolean NOT NULL,
    max_subscribers       integer NOT NULL,
    subscribers           integer NOT NULL DEFAULT 0,
    last_seq              bigint NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL
);

CREATE TABLE topic_subscriptions (
    topic   text COLLATE "C" NOT NULL REFERENCES topics (name) ON DELETE CASCADE,
    user_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (topic, user_id)
);

-- UserTopics: a user's topics by name.
CREATE INDEX topic_subscriptions_user_id_idx ON topic_subscriptions (user_id, topic);

CREATE TABLE topic_items (
    topic        text COLLATE "C" NOT NULL REFERENCES topics (name) ON DELETE CASCADE,
    seq          bigint NOT NULL,
    id           text COLLATE "C" NOT NULL,
    subject      text NOT NULL,
    content      bytea NOT NULL,
    content_type text NOT NULL,
    sender       text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz,
    PRIMARY KEY (topic, seq),
    UNIQUE (topic, id)
);

-- +goose Down
DROP TABLE topic_items;
DROP TABLE topic_subscriptions;
DROP TABLE topics;
DROP TABLE inbox_items;
DROP TABLE inbox_users;
