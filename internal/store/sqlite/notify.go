package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/taisen-dev/taisen/internal/store"
)

// PutInbox implements store.Store. The one write connection serialises
// writers, so inserts commit in seq order.
func (c *conn) PutInbox(ctx context.Context, items []store.InboxItem) ([]bool, error) {
	if err := store.CheckInboxItems(items); err != nil {
		return nil, fmt.Errorf("sqlite: put inbox: %w", err)
	}
	inserted := make([]bool, len(items))
	if len(items) == 0 {
		return inserted, nil
	}
	now := now()
	err := c.inTx(ctx, func(tx *conn) error {
		clear(inserted)
		stmt, err := tx.write.PrepareContext(ctx,
			`INSERT INTO inbox_items (user_id, id, subject, content, content_type, sender, created_at, expires_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, id) DO NOTHING`)
		if err != nil {
			return mapErr(err)
		}
		defer stmt.Close()
		for i, it := range items {
			created := store.Timestamp(it.CreatedAt)
			if created.IsZero() {
				created = now
			}
			res, err := stmt.ExecContext(ctx, it.UserID, it.ID, it.Subject, blob(it.Content), it.ContentType,
				it.Sender, formatTime(created), nullTime(store.Timestamp(it.ExpiresAt)))
			if err != nil {
				return mapErr(err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			inserted[i] = n == 1
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: put inbox: %w", err)
	}
	return inserted, nil
}

const inboxColumns = `seq, user_id, id, subject, content, content_type, sender, created_at, expires_at`

// pendingInbox is the predicate of the items Inbox lists; its first
// argument is the user id, its second now. inbox_items_pending_idx
// repeats "removed_at IS NULL".
const pendingInbox = `user_id = ? AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`

// inboxQuery lists a page of a user's pending items after a seq.
const inboxQuery = `SELECT ` + inboxColumns + ` FROM inbox_items WHERE ` + pendingInbox + ` AND seq > ? ORDER BY seq LIMIT ?`

// Inbox implements store.Store. The cursor holds the seq of the last item
// of the page. A page is a short read on inbox_items_pending_idx, run as
// a point read (see pointRead): every login lists the first page.
func (c *conn) Inbox(ctx context.Context, userID string, now time.Time, p store.Page) ([]store.InboxItem, string, error) {
	limit, err := p.Size()
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list inbox: %w", err)
	}
	after, err := store.DecodeSeqCursor(p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list inbox: %w", err)
	}
	if ctx, err = pointRead(ctx); err != nil {
		return nil, "", fmt.Errorf("sqlite: list inbox: %w", err)
	}
	args := []any{userID, formatTime(store.Timestamp(now)), after, limit + 1}
	var rows *sql.Rows
	if c.inbox != nil {
		rows, err = c.inbox.QueryContext(ctx, args...)
	} else {
		rows, err = c.read.QueryContext(ctx, inboxQuery, args...)
	}
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list inbox: %w", mapErr(err))
	}
	defer rows.Close()
	items := []store.InboxItem{}
	for rows.Next() {
		var (
			it               store.InboxItem
			created          string
			expires          sql.NullString
			errCreated, errX error
		)
		if err := rows.Scan(&it.Seq, &it.UserID, &it.ID, &it.Subject, &it.Content, &it.ContentType,
			&it.Sender, &created, &expires); err != nil {
			return nil, "", fmt.Errorf("sqlite: list inbox: %w", mapErr(err))
		}
		it.CreatedAt, errCreated = parseTime(created)
		if expires.Valid {
			it.ExpiresAt, errX = parseTime(expires.String)
		}
		if err := errors.Join(errCreated, errX); err != nil {
			return nil, "", fmt.Errorf("sqlite: list inbox: %w", err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list inbox: %w", mapErr(err))
	}
	next := ""
	if len(items) > limit {
		items = items[:limit]
		next = store.EncodeSeqCursor(items[limit-1].Seq)
	}
	return items, next, nil
}

// CountInbox implements store.Store.
func (c *conn) CountInbox(ctx context.Context, userID string, now time.Time) (int, error) {
	var n int
	err := c.read.QueryRowContext(ctx, `SELECT count(*) FROM inbox_items WHERE `+pendingInbox,
		userID, formatTime(store.Timestamp(now))).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count inbox: %w", mapErr(err))
	}
	return n, nil
}

// AckInbox implements store.Store.
func (c *conn) AckInbox(ctx context.Context, userID string, ids []string, now time.Time) (int, error) {
	n, err := c.removeInbox(ctx, userID, ids, now)
	if err != nil {
		return 0, fmt.Errorf("sqlite: ack inbox: %w", err)
	}
	return n, nil
}

// DeleteInbox implements store.Store.
func (c *conn) DeleteInbox(ctx context.Context, userID string, ids []string, now time.Time) (int, error) {
	n, err := c.removeInbox(ctx, userID, ids, now)
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete inbox: %w", err)
	}
	return n, nil
}

// removeInbox marks the user's pending items with these ids removed at now.
func (c *conn) removeInbox(ctx context.Context, userID string, ids []string, now time.Time) (int, error) {
	if len(ids) == 0 {
		return 0, ctx.Err()
	}
	list, err := jsonList(ids)
	if err != nil {
		return 0, err
	}
	at := formatTime(store.Timestamp(now))
	res, err := c.write.ExecContext(ctx,
		`UPDATE inbox_items SET removed_at = ?
		 WHERE `+pendingInbox+` AND id IN (SELECT value FROM json_each(?))`,
		at, userID, at, list)
	if err != nil {
		return 0, mapErr(err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// pruneInboxQuery deletes up to $4 rows that left the inbox before $1
// (= $2 = $3). The two branches are disjoint, so UNION ALL needs no sort.
const pruneInboxQuery = `DELETE FROM inbox_items WHERE seq IN (
	SELECT seq FROM inbox_items WHERE removed_at IS NOT NULL AND removed_at < ?
	UNION ALL
	SELECT seq FROM inbox_items WHERE expires_at IS NOT NULL AND expires_at < ?
		AND (removed_at IS NULL OR removed_at >= ?)
	LIMIT ?)`

// PruneInbox implements store.Store.
func (c *conn) PruneInbox(ctx context.Context, now time.Time, keepTombstones time.Duration, limit int) (int, error) {
	if keepTombstones < 0 || limit <= 0 {
		return 0, fmt.Errorf("sqlite: prune inbox: keepTombstones %v and limit %d: want keepTombstones >= 0 and limit > 0", keepTombstones, limit)
	}
	before := formatTime(store.Timestamp(now.Add(-keepTombstones)))
	res, err := c.write.ExecContext(ctx,
		pruneInboxQuery, before, before, before, limit)
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune inbox: %w", mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune inbox: %w", err)
	}
	return int(n), nil
}

const topicColumns = `name, retain, clients_may_subscribe, max_subscribers, created_at, subscribers`

func scanTopic(row scanner) (store.Topic, error) {
	var (
		t       store.Topic
		created string
	)
	if err := row.Scan(&t.Name, &t.Retain, &t.ClientsMaySubscribe, &t.MaxSubscribers, &created, &t.Subscribers); err != nil {
		return store.Topic{}, mapErr(err)
	}
	var err error
	if t.CreatedAt, err = parseTime(created); err != nil {
		return store.Topic{}, err
	}
	return t, nil
}

// PutTopic implements store.Store.
func (c *conn) PutTopic(ctx context.Context, t store.Topic) (store.Topic, error) {
	if err := store.CheckTopic(t); err != nil {
		return store.Topic{}, fmt.Errorf("sqlite: put topic: %w", err)
	}
	var got store.Topic
	err := c.inTx(ctx, func(tx *conn) error {
		var err error
		got, err = scanTopic(tx.write.QueryRowContext(ctx,
			`INSERT INTO topics (name, retain, clients_may_subscribe, max_subscribers, created_at)
			 VALUES (?, ?, ?, ?, ?)
			 ON CONFLICT (name) DO UPDATE SET retain = excluded.retain,
				clients_may_subscribe = excluded.clients_may_subscribe,
				max_subscribers = excluded.max_subscribers
			 RETURNING `+topicColumns,
			t.Name, t.Retain, t.ClientsMaySubscribe, t.MaxSubscribers, formatTime(now())))
		if err != nil {
			return err
		}
		return tx.trimTopic(ctx, t.Name, t.Retain)
	})
	if err != nil {
		return store.Topic{}, fmt.Errorf("sqlite: put topic: %w", err)
	}
	return got, nil
}

// trimTopic deletes the items of topic beyond its last retain.
func (c *conn) trimTopic(ctx context.Context, topic string, retain int) error {
	_, err := c.write.ExecContext(ctx,
		`DELETE FROM topic_items WHERE topic = ?
		 AND seq <= (SELECT last_seq FROM topics WHERE name = ?) - ?`,
		topic, topic, retain)
	return mapErr(err)
}

// Topic implements store.Store.
func (c *conn) Topic(ctx context.Context, name string) (store.Topic, error) {
	t, err := scanTopic(c.read.QueryRowContext(ctx, `SELECT `+topicColumns+` FROM topics WHERE name = ?`, name))
	if err != nil {
		return store.Topic{}, fmt.Errorf("sqlite: get topic: %w", err)
	}
	return t, nil
}

// DeleteTopic implements store.Store. Subscriptions and items go with the
// topic (ON DELETE CASCADE).
func (c *conn) DeleteTopic(ctx context.Context, name string) error {
	res, err := c.write.ExecContext(ctx, `DELETE FROM topics WHERE name = ?`, name)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("sqlite: delete topic: %w", err)
	}
	return nil
}

// ListTopics implements store.Store.
func (c *conn) ListTopics(ctx context.Context, p store.Page) ([]store.Topic, string, error) {
	limit, err := p.Size()
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list topics: %w", err)
	}
	after := ""
	if p.Cursor != "" {
		keys, err := store.DecodeCursor(p.Cursor, 1)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list topics: %w", err)
		}
		after = keys[0]
	}
	rows, err := c.read.QueryContext(ctx,
		`SELECT `+topicColumns+` FROM topics WHERE name > ? ORDER BY name LIMIT ?`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list topics: %w", mapErr(err))
	}
	defer rows.Close()
	topics := []store.Topic{}
	for rows.Next() {
		t, err := scanTopic(rows)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list topics: %w", err)
		}
		topics = append(topics, t)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list topics: %w", mapErr(err))
	}
	next := ""
	if len(topics) > limit {
		topics = topics[:limit]
		next = store.EncodeCursor(topics[limit-1].Name)
	}
	return topics, next, nil
}

// Subscribe implements store.Store.
func (c *conn) Subscribe(ctx context.Context, topic string, userIDs []string) (int, error) {
	if err := store.CheckUserIDs(userIDs); err != nil {
		return 0, fmt.Errorf("sqlite: subscribe: %w", err)
	}
	list, err := jsonList(userIDs)
	if err != nil {
		return 0, fmt.Errorf("sqlite: subscribe: %w", err)
	}
	var changed int
	err = c.inTx(ctx, func(tx *conn) error {
		var maxSubs, subs int
		if err := tx.write.QueryRowContext(ctx,
			`SELECT max_subscribers, subscribers FROM topics WHERE name = ?`, topic,
		).Scan(&maxSubs, &subs); err != nil {
			return mapErr(err)
		}
		if maxSubs > 0 {
			var fresh int
			if err := tx.write.QueryRowContext(ctx,
				`SELECT count(DISTINCT j.value) FROM json_each(?) j
				 WHERE NOT EXISTS (SELECT 1 FROM topic_subscriptions s WHERE s.topic = ? AND s.user_id = j.value)`,
				list, topic,
			).Scan(&fresh); err != nil {
				return mapErr(err)
			}
			if subs+fresh > maxSubs {
				return fmt.Errorf("%w: topic %q has %d of %d subscribers, %d more asked", store.ErrLimit, topic, subs, maxSubs, fresh)
			}
		}
		res, err := tx.write.ExecContext(ctx,
			`INSERT INTO topic_subscriptions (topic, user_id) SELECT ?, value FROM json_each(?) WHERE true
			 ON CONFLICT (topic, user_id) DO NOTHING`, topic, list)
		if err != nil {
			return mapErr(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		changed = int(n)
		_, err = tx.write.ExecContext(ctx, `UPDATE topics SET subscribers = subscribers + ? WHERE name = ?`, n, topic)
		return mapErr(err)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: subscribe: %w", err)
	}
	return changed, nil
}

// Unsubscribe implements store.Store.
func (c *conn) Unsubscribe(ctx context.Context, topic string, userIDs []string) (int, error) {
	if err := store.CheckUserIDs(userIDs); err != nil {
		return 0, fmt.Errorf("sqlite: unsubscribe: %w", err)
	}
	list, err := jsonList(userIDs)
	if err != nil {
		return 0, fmt.Errorf("sqlite: unsubscribe: %w", err)
	}
	var changed int
	err = c.inTx(ctx, func(tx *conn) error {
		var one int
		if err := tx.write.QueryRowContext(ctx, `SELECT 1 FROM topics WHERE name = ?`, topic).Scan(&one); err != nil {
			return mapErr(err)
		}
		res, err := tx.write.ExecContext(ctx,
			`DELETE FROM topic_subscriptions WHERE topic = ? AND user_id IN (SELECT value FROM json_each(?))`, topic, list)
		if err != nil {
			return mapErr(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		changed = int(n)
		_, err = tx.write.ExecContext(ctx, `UPDATE topics SET subscribers = subscribers - ? WHERE name = ?`, n, topic)
		return mapErr(err)
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: unsubscribe: %w", err)
	}
	return changed, nil
}

// usersPendingQuery answers UsersPending; its arguments are the user ids
// as a JSON array and now. Each user is looked up on the indexes Inbox and
// UserTopics read.
const usersPendingQuery = `SELECT u.key,
	EXISTS (SELECT 1 FROM inbox_items WHERE user_id = u.value AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)),
	EXISTS (SELECT 1 FROM topic_subscriptions WHERE user_id = u.value)
	FROM json_each(?1) AS u`

// UsersPending implements store.Store, as a point read (see pointRead):
// a login batch is bounded by its caller.
func (c *conn) UsersPending(ctx context.Context, userIDs []string, now time.Time) ([]store.Pending, error) {
	ctx, err := pointRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: users pending: %w", err)
	}
	ids, err := jsonList(userIDs)
	if err != nil {
		return nil, fmt.Errorf("sqlite: users pending: %w", err)
	}
	args := []any{ids, formatTime(store.Timestamp(now))}
	var rows *sql.Rows
	if c.usersPending != nil {
		rows, err = c.usersPending.QueryContext(ctx, args...)
	} else {
		rows, err = c.read.QueryContext(ctx, usersPendingQuery, args...)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: users pending: %w", mapErr(err))
	}
	defer rows.Close()
	out := make([]store.Pending, len(userIDs))
	for rows.Next() {
		var (
			i int
			p store.Pending
		)
		if err := rows.Scan(&i, &p.Inbox, &p.Topics); err != nil {
			return nil, fmt.Errorf("sqlite: users pending: %w", mapErr(err))
		}
		if i < 0 || i >= len(out) {
			return nil, fmt.Errorf("sqlite: users pending: row for user %d of %d", i, len(out))
		}
		out[i] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: users pending: %w", mapErr(err))
	}
	return out, nil
}

const userTopicsQuery = `SELECT topic FROM topic_subscriptions WHERE user_id = ? ORDER BY topic`

// UserTopics implements store.Store. A read on topic_subscriptions_user_id_idx,
// run as a point read (see pointRead): every login lists them.
func (c *conn) UserTopics(ctx context.Context, userID string) ([]string, error) {
	ctx, err := pointRead(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: user topics: %w", err)
	}
	var rows *sql.Rows
	if c.userTopics != nil {
		rows, err = c.userTopics.QueryContext(ctx, userID)
	} else {
		rows, err = c.read.QueryContext(ctx, userTopicsQuery, userID)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: user topics: %w", mapErr(err))
	}
	topics, err := scanStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: user topics: %w", err)
	}
	return topics, nil
}

const topicSubscribersQuery = `SELECT user_id FROM topic_subscriptions WHERE topic = ? AND user_id > ? ORDER BY user_id LIMIT ?`

// TopicSubscribers implements store.Store.
func (c *conn) TopicSubscribers(ctx context.Context, topic string, p store.Page) ([]string, string, error) {
	limit, err := p.Size()
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: topic subscribers: %w", err)
	}
	after := ""
	if p.Cursor != "" {
		keys, err := store.DecodeCursor(p.Cursor, 1)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: topic subscribers: %w", err)
		}
		after = keys[0]
	}
	rows, err := c.read.QueryContext(ctx, topicSubscribersQuery, topic, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: topic subscribers: %w", mapErr(err))
	}
	users, err := scanStrings(rows)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: topic subscribers: %w", err)
	}
	if len(users) == 0 {
		// Tell an empty page from a missing topic.
		var one int
		if err := c.read.QueryRowContext(ctx, `SELECT 1 FROM topics WHERE name = ?`, topic).Scan(&one); err != nil {
			return nil, "", fmt.Errorf("sqlite: topic subscribers: %w", mapErr(err))
		}
	}
	next := ""
	if len(users) > limit {
		users = users[:limit]
		next = store.EncodeCursor(users[limit-1])
	}
	return users, next, nil
}

// scanStrings reads and closes rows of one text column.
func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

const topicItemColumns = `topic, seq, id, subject, content, content_type, sender, created_at, expires_at`

func scanTopicItem(row scanner) (store.TopicItem, error) {
	var (
		it               store.TopicItem
		created          string
		expires          sql.NullString
		errCreated, errX error
	)
	if err := row.Scan(&it.Topic, &it.Seq, &it.ID, &it.Subject, &it.Content, &it.ContentType, &it.Sender,
		&created, &expires); err != nil {
		return store.TopicItem{}, mapErr(err)
	}
	it.CreatedAt, errCreated = parseTime(created)
	if expires.Valid {
		it.ExpiresAt, errX = parseTime(expires.String)
	}
	if err := errors.Join(errCreated, errX); err != nil {
		return store.TopicItem{}, err
	}
	return it, nil
}

// PutTopicItem implements store.Store.
func (c *conn) PutTopicItem(ctx context.Context, item store.TopicItem) (store.TopicItem, bool, error) {
	if item.Topic == "" || item.ID == "" {
		return store.TopicItem{}, false, errors.New("sqlite: put topic item: topic and id are required")
	}
	item.CreatedAt = store.Timestamp(item.CreatedAt)
	if item.CreatedAt.IsZero() {
		item.CreatedAt = now()
	}
	item.ExpiresAt = store.Timestamp(item.ExpiresAt)
	var (
		got      store.TopicItem
		inserted bool
	)
	err := c.inTx(ctx, func(tx *conn) error {
		var retain int
		var last int64
		if err := tx.write.QueryRowContext(ctx,
			`SELECT retain, last_seq FROM topics WHERE name = ?`, item.Topic).Scan(&retain, &last); err != nil {
			return mapErr(err)
		}
		existing, err := scanTopicItem(tx.write.QueryRowContext(ctx,
			`SELECT `+topicItemColumns+` FROM topic_items WHERE topic = ? AND id = ?`, item.Topic, item.ID))
		if err == nil {
			got, inserted = existing, false
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		item.Seq = last + 1
		if _, err := tx.write.ExecContext(ctx,
			`INSERT INTO topic_items (`+topicItemColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			item.Topic, item.Seq, item.ID, item.Subject, blob(item.Content), item.ContentType, item.Sender,
			formatTime(item.CreatedAt), nullTime(item.ExpiresAt)); err != nil {
			return mapErr(err)
		}
		if _, err := tx.write.ExecContext(ctx,
			`UPDATE topics SET last_seq = ? WHERE name = ?`, item.Seq, item.Topic); err != nil {
			return mapErr(err)
		}
		got, inserted = item, true
		return tx.trimTopic(ctx, item.Topic, retain)
	})
	if err != nil {
		return store.TopicItem{}, false, fmt.Errorf("sqlite: put topic item: %w", err)
	}
	return got, inserted, nil
}

const retainedItemsQuery = `SELECT ` + topicItemColumns + ` FROM topic_items
	WHERE topic IN (SELECT value FROM json_each(?)) AND (expires_at IS NULL OR expires_at > ?)
	ORDER BY topic, seq`

// RetainedItems implements store.Store.
func (c *conn) RetainedItems(ctx context.Context, topics []string, now time.Time) ([]store.TopicItem, error) {
	list, err := jsonList(topics)
	if err != nil {
		return nil, fmt.Errorf("sqlite: retained items: %w", err)
	}
	rows, err := c.read.QueryContext(ctx, retainedItemsQuery,
		list, formatTime(store.Timestamp(now)))
	if err != nil {
		return nil, fmt.Errorf("sqlite: retained items: %w", mapErr(err))
	}
	defer rows.Close()
	items := []store.TopicItem{}
	for rows.Next() {
		it, err := scanTopicItem(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: retained items: %w", err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: retained items: %w", mapErr(err))
	}
	return items, nil
}

// jsonList encodes strings as a JSON array, which json_each reads.
func jsonList(s []string) (string, error) {
	if s == nil {
		s = []string{}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// blob maps nil to an empty blob: content columns are NOT NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
