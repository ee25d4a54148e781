package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/taisen-dev/taisen/internal/store"
)

// deadlockDetected is the SQLSTATE of a transaction PostgreSQL aborted to
// break a deadlock.
const deadlockDetected = "40P01"

// PutInbox implements store.Store. It takes each user's inbox_users row,
// in byte order of the user ids, before inserting, so a user's items
// commit in seq order and concurrent puts of one (user, id) insert it
// once. Outside a transaction it retries a transaction PostgreSQL aborted
// as a deadlock victim.
func (c *conn) PutInbox(ctx context.Context, items []store.InboxItem) ([]bool, error) {
	if err := store.CheckInboxItems(items); err != nil {
		return nil, fmt.Errorf("postgres: put inbox: %w", err)
	}
	inserted := make([]bool, len(items))
	if len(items) == 0 {
		return inserted, nil
	}
	now := now()

	// Items to insert: the first of each (user, id) of the call.
	type key struct{ user, id string }
	index := make(map[key]int, len(items))
	perUser := map[string]int64{}
	for i, it := range items {
		k := key{it.UserID, it.ID}
		if _, dup := index[k]; dup {
			continue
		}
		index[k] = i
		perUser[it.UserID]++
	}
	users := make([]string, 0, len(perUser))
	for u := range perUser {
		users = append(users, u)
	}
	slices.Sort(users) // byte order, as COLLATE "C"
	counts := make([]int64, len(users))
	for i, u := range users {
		counts[i] = perUser[u]
	}

	n := len(index)
	var (
		userIDs   = make([]string, 0, n)
		ids       = make([]string, 0, n)
		seqs      = make([]int64, 0, n)
		subjects  = make([]string, 0, n)
		contents  = make([][]byte, 0, n)
		types     = make([]string, 0, n)
		senders   = make([]string, 0, n)
		createdAt = make([]time.Time, 0, n)
		expiresAt = make([]pgtype.Timestamptz, 0, n)
	)
	put := func(tx *conn) error {
		clear(inserted)
		rows, err := tx.q.Query(ctx,
			`INSERT INTO inbox_users (user_id, last_seq)
			 SELECT u, n FROM unnest($1::text[], $2::bigint[]) AS t (u, n) ORDER BY u COLLATE "C"
			 ON CONFLICT (user_id) DO UPDATE SET last_seq = inbox_users.last_seq + excluded.last_seq
			 RETURNING user_id, last_seq`,
			users, counts)
		if err != nil {
			return mapErr(err)
		}
		next := make(map[string]int64, len(users))
		for rows.Next() {
			var (
				u    string
				last int64
			)
			if err := rows.Scan(&u, &last); err != nil {
				rows.Close()
				return mapErr(err)
			}
			next[u] = last - perUser[u] + 1
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return mapErr(err)
		}

		userIDs, ids, seqs, subjects, contents = userIDs[:0], ids[:0], seqs[:0], subjects[:0], contents[:0]
		types, senders, createdAt, expiresAt = types[:0], senders[:0], createdAt[:0], expiresAt[:0]
		for i, it := range items {
			if index[key{it.UserID, it.ID}] != i {
				continue
			}
			created := store.Timestamp(it.CreatedAt)
			if created.IsZero() {
				created = now
			}
			expires := store.Timestamp(it.ExpiresAt)
			userIDs = append(userIDs, it.UserID)
			ids = append(ids, it.ID)
			seqs = append(seqs, next[it.UserID])
			next[it.UserID]++
			subjects = append(subjects, it.Subject)
			contents = append(contents, bytea(it.Content))
			types = append(types, it.ContentType)
			senders = append(senders, it.Sender)
			createdAt = append(createdAt, created)
			expiresAt = append(expiresAt, pgtype.Timestamptz{Time: expires, Valid: !expires.IsZero()})
		}
		rows, err = tx.q.Query(ctx,
			`INSERT INTO inbox_items (user_id, id, seq, subject, content, content_type, sender, created_at, expires_at)
			 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::text[],
				$7::text[], $8::timestamptz[], $9::timestamptz[])
			 ON CONFLICT (user_id, id) DO NOTHING
			 RETURNING user_id, id`,
			userIDs, ids, seqs, subjects, contents, types, senders, createdAt, expiresAt)
		if err != nil {
			return mapErr(err)
		}
		defer rows.Close()
		for rows.Next() {
			var k key
			if err := rows.Scan(&k.user, &k.id); err != nil {
				return mapErr(err)
			}
			inserted[index[k]] = true
		}
		return mapErr(rows.Err())
	}

	for attempt := 1; ; attempt++ {
		err := c.inTx(ctx, put)
		var pgErr *pgconn.PgError
		if err != nil && c.pool != nil && attempt < 5 && errors.As(err, &pgErr) && pgErr.Code == deadlockDetected {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: put inbox: %w", err)
		}
		return inserted, nil
	}
}

const inboxColumns = `seq, user_id, id, subject, content, content_type, sender, created_at, expires_at`

// pendingInbox is the predicate of the items Inbox lists ($1 the user id,
// $2 now). inbox_items_pending_idx repeats "removed_at IS NULL".
const pendingInbox = `user_id = $1 AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`

// inboxQuery lists a page of a user's pending items after a seq.
const inboxQuery = `SELECT ` + inboxColumns + ` FROM inbox_items WHERE ` + pendingInbox + ` AND seq > $3 ORDER BY seq LIMIT $4`

// Inbox implements store.Store. The cursor holds the seq of the last item
// of the page.
func (c *conn) Inbox(ctx context.Context, userID string, now time.Time, p store.Page) ([]store.InboxItem, string, error) {
	limit, err := p.Size()
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list inbox: %w", err)
	}
	after, err := store.DecodeSeqCursor(p.Cursor)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list inbox: %w", err)
	}
	rows, err := c.q.Query(ctx, inboxQuery,
		userID, store.Timestamp(now), after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list inbox: %w", mapErr(err))
	}
	defer rows.Close()
	items := []store.InboxItem{}
	for rows.Next() {
		var (
			it      store.InboxItem
			expires *time.Time
		)
		if err := rows.Scan(&it.Seq, &it.UserID, &it.ID, &it.Subject, &it.Content, &it.ContentType,
			&it.Sender, &it.CreatedAt, &expires); err != nil {
			return nil, "", fmt.Errorf("postgres: list inbox: %w", mapErr(err))
		}
		it.CreatedAt = it.CreatedAt.UTC()
		if expires != nil {
			it.ExpiresAt = expires.UTC()
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("postgres: list inbox: %w", mapErr(err))
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
	if err := c.q.QueryRow(ctx, `SELECT count(*) FROM inbox_items WHERE `+pendingInbox,
		userID, store.Timestamp(now)).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: count inbox: %w", mapErr(err))
	}
	return n, nil
}

// AckInbox implements store.Store.
func (c *conn) AckInbox(ctx context.Context, userID string, ids []string, now time.Time) (int, error) {
	n, err := c.removeInbox(ctx, userID, ids, now)
	if err != nil {
		return 0, fmt.Errorf("postgres: ack inbox: %w", err)
	}
	return n, nil
}

// DeleteInbox implements store.Store.
func (c *conn) DeleteInbox(ctx context.Context, userID string, ids []string, now time.Time) (int, error) {
	n, err := c.removeInbox(ctx, userID, ids, now)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete inbox: %w", err)
	}
	return n, nil
}

// removeInbox marks the user's pending items with these ids removed at now.
func (c *conn) removeInbox(ctx context.Context, userID string, ids []string, now time.Time) (int, error) {
	if len(ids) == 0 {
		return 0, ctx.Err()
	}
	tag, err := c.q.Exec(ctx,
		`UPDATE inbox_items SET removed_at = $2 WHERE `+pendingInbox+` AND id = ANY ($3)`,
		userID, store.Timestamp(now), ids)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// pruneInboxQuery deletes up to $2 rows that left the inbox before $1.
// The two branches are disjoint, so UNION ALL needs no sort.
const pruneInboxQuery = `DELETE FROM inbox_items WHERE (user_id, id) IN (
	SELECT user_id, id FROM inbox_items WHERE removed_at IS NOT NULL AND removed_at < $1
	UNION ALL
	SELECT user_id, id FROM inbox_items WHERE expires_at IS NOT NULL AND expires_at < $1
		AND (removed_at IS NULL OR removed_at >= $1)
	LIMIT $2)`

// PruneInbox implements store.Store.
func (c *conn) PruneInbox(ctx context.Context, now time.Time, keepTombstones time.Duration, limit int) (int, error) {
	if keepTombstones < 0 || limit <= 0 {
		return 0, fmt.Errorf("postgres: prune inbox: keepTombstones %v and limit %d: want keepTombstones >= 0 and limit > 0", keepTombstones, limit)
	}
	tag, err := c.q.Exec(ctx, pruneInboxQuery,
		store.Timestamp(now.Add(-keepTombstones)), limit)
	if err != nil {
		return 0, fmt.Errorf("postgres: prune inbox: %w", mapErr(err))
	}
	return int(tag.RowsAffected()), nil
}

const topicColumns = `name, retain, clients_may_subscribe, max_subscribers, created_at, subscribers`

func scanTopic(row pgx.Row) (store.Topic, error) {
	var t store.Topic
	if err := row.Scan(&t.Name, &t.Retain, &t.ClientsMaySubscribe, &t.MaxSubscribers, &t.CreatedAt, &t.Subscribers); err != nil {
		return store.Topic{}, mapErr(err)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return t, nil
}

// PutTopic implements store.Store.
func (c *conn) PutTopic(ctx context.Context, t store.Topic) (store.Topic, error) {
	if err := store.CheckTopic(t); err != nil {
		return store.Topic{}, fmt.Errorf("postgres: put topic: %w", err)
	}
	var got store.Topic
	err := c.inTx(ctx, func(tx *conn) error {
		var err error
		got, err = scanTopic(tx.q.QueryRow(ctx,
			`INSERT INTO topics (name, retain, clients_may_subscribe, max_subscribers, created_at)
			 VALUES ($1, $2, $3, $4, $5)
			 ON CONFLICT (name) DO UPDATE SET retain = excluded.retain,
				clients_may_subscribe = excluded.clients_may_subscribe,
				max_subscribers = excluded.max_subscribers
			 RETURNING `+topicColumns,
			t.Name, t.Retain, t.ClientsMaySubscribe, t.MaxSubscribers, now()))
		if err != nil {
			return err
		}
		return tx.trimTopic(ctx, t.Name, t.Retain)
	})
	if err != nil {
		return store.Topic{}, fmt.Errorf("postgres: put topic: %w", err)
	}
	return got, nil
}

// trimTopic deletes the items of topic beyond its last retain. The caller
// holds the topic's row lock.
func (c *conn) trimTopic(ctx context.Context, topic string, retain int) error {
	_, err := c.q.Exec(ctx,
		`DELETE FROM topic_items WHERE topic = $1
		 AND seq <= (SELECT last_seq FROM topics WHERE name = $1) - $2`,
		topic, retain)
	return mapErr(err)
}

// Topic implements store.Store.
func (c *conn) Topic(ctx context.Context, name string) (store.Topic, error) {
	t, err := scanTopic(c.q.QueryRow(ctx, `SELECT `+topicColumns+` FROM topics WHERE name = $1`, name))
	if err != nil {
		return store.Topic{}, fmt.Errorf("postgres: get topic: %w", err)
	}
	return t, nil
}

// DeleteTopic implements store.Store. Subscriptions and items go with the
// topic (ON DELETE CASCADE).
func (c *conn) DeleteTopic(ctx context.Context, name string) error {
	tag, err := c.q.Exec(ctx, `DELETE FROM topics WHERE name = $1`, name)
	if err := affectedOne(tag, err); err != nil {
		return fmt.Errorf("postgres: delete topic: %w", err)
	}
	return nil
}

// ListTopics implements store.Store.
func (c *conn) ListTopics(ctx context.Context, p store.Page) ([]store.Topic, string, error) {
	limit, err := p.Size()
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list topics: %w", err)
	}
	after := ""
	if p.Cursor != "" {
		keys, err := store.DecodeCursor(p.Cursor, 1)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: list topics: %w", err)
		}
		after = keys[0]
	}
	rows, err := c.q.Query(ctx,
		`SELECT `+topicColumns+` FROM topics WHERE name > $1 ORDER BY name LIMIT $2`, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: list topics: %w", mapErr(err))
	}
	defer rows.Close()
	topics := []store.Topic{}
	for rows.Next() {
		t, err := scanTopic(rows)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: list topics: %w", err)
		}
		topics = append(topics, t)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("postgres: list topics: %w", mapErr(err))
	}
	next := ""
	if len(topics) > limit {
		topics = topics[:limit]
		next = store.EncodeCursor(topics[limit-1].Name)
	}
	return topics, next, nil
}

// Subscribe implements store.Store. It takes the topic's row lock first,
// as every writer of its subscriptions does.
func (c *conn) Subscribe(ctx context.Context, topic string, userIDs []string) (int, error) {
	if err := store.CheckUserIDs(userIDs); err != nil {
		return 0, fmt.Errorf("postgres: subscribe: %w", err)
	}
	users := sortedUnique(userIDs)
	var changed int
	err := c.inTx(ctx, func(tx *conn) error {
		var maxSubs, subs int
		if err := tx.q.QueryRow(ctx,
			`SELECT max_subscribers, subscribers FROM topics WHERE name = $1 FOR UPDATE`, topic,
		).Scan(&maxSubs, &subs); err != nil {
			return mapErr(err)
		}
		if maxSubs > 0 {
			var fresh int
			if err := tx.q.QueryRow(ctx,
				`SELECT count(*) FROM unnest($2::text[]) AS u (user_id)
				 WHERE NOT EXISTS (SELECT 1 FROM topic_subscriptions s WHERE s.topic = $1 AND s.user_id = u.user_id)`,
				topic, users,
			).Scan(&fresh); err != nil {
				return mapErr(err)
			}
			if subs+fresh > maxSubs {
				return fmt.Errorf("%w: topic %q has %d of %d subscribers, %d more asked", store.ErrLimit, topic, subs, maxSubs, fresh)
			}
		}
		tag, err := tx.q.Exec(ctx,
			`INSERT INTO topic_subscriptions (topic, user_id) SELECT $1, u FROM unnest($2::text[]) AS u
			 ON CONFLICT (topic, user_id) DO NOTHING`, topic, users)
		if err != nil {
			return mapErr(err)
		}
		changed = int(tag.RowsAffected())
		_, err = tx.q.Exec(ctx, `UPDATE topics SET subscribers = subscribers + $2 WHERE name = $1`, topic, changed)
		return mapErr(err)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: subscribe: %w", err)
	}
	return changed, nil
}

// Unsubscribe implements store.Store. It takes the topic's row lock first,
// as every writer of its subscriptions does.
func (c *conn) Unsubscribe(ctx context.Context, topic string, userIDs []string) (int, error) {
	if err := store.CheckUserIDs(userIDs); err != nil {
		return 0, fmt.Errorf("postgres: unsubscribe: %w", err)
	}
	var changed int
	err := c.inTx(ctx, func(tx *conn) error {
		var one int
		if err := tx.q.QueryRow(ctx, `SELECT 1 FROM topics WHERE name = $1 FOR UPDATE`, topic).Scan(&one); err != nil {
			return mapErr(err)
		}
		tag, err := tx.q.Exec(ctx,
			`DELETE FROM topic_subscriptions WHERE topic = $1 AND user_id = ANY ($2)`, topic, sortedUnique(userIDs))
		if err != nil {
			return mapErr(err)
		}
		changed = int(tag.RowsAffected())
		_, err = tx.q.Exec(ctx, `UPDATE topics SET subscribers = subscribers - $2 WHERE name = $1`, topic, changed)
		return mapErr(err)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: unsubscribe: %w", err)
	}
	return changed, nil
}

// sortedUnique returns the distinct strings of s in byte order.
func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// usersPendingQuery answers UsersPending; its arguments are the user ids
// and now. Each user is looked up on the indexes Inbox and UserTopics read.
const usersPendingQuery = `SELECT u.i,
	EXISTS (SELECT 1 FROM inbox_items WHERE user_id = u.id AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > $2)),
	EXISTS (SELECT 1 FROM topic_subscriptions WHERE user_id = u.id)
	FROM unnest($1::text[]) WITH ORDINALITY AS u(id, i)`

// UsersPending implements store.Store.
func (c *conn) UsersPending(ctx context.Context, userIDs []string, now time.Time) ([]store.Pending, error) {
	rows, err := c.q.Query(ctx, usersPendingQuery, userIDs, store.Timestamp(now))
	if err != nil {
		return nil, fmt.Errorf("postgres: users pending: %w", mapErr(err))
	}
	defer rows.Close()
	out := make([]store.Pending, len(userIDs))
	for rows.Next() {
		var (
			i int64
			p store.Pending
		)
		if err := rows.Scan(&i, &p.Inbox, &p.Topics); err != nil {
			return nil, fmt.Errorf("postgres: users pending: %w", mapErr(err))
		}
		if i < 1 || i > int64(len(out)) {
			return nil, fmt.Errorf("postgres: users pending: row for user %d of %d", i, len(out))
		}
		out[i-1] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: users pending: %w", mapErr(err))
	}
	return out, nil
}

const userTopicsQuery = `SELECT topic FROM topic_subscriptions WHERE user_id = $1 ORDER BY topic`

// UserTopics implements store.Store.
func (c *conn) UserTopics(ctx context.Context, userID string) ([]string, error) {
	rows, err := c.q.Query(ctx, userTopicsQuery, userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: user topics: %w", mapErr(err))
	}
	topics, err := scanStrings(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: user topics: %w", err)
	}
	return topics, nil
}

const topicSubscribersQuery = `SELECT user_id FROM topic_subscriptions WHERE topic = $1 AND user_id > $2 ORDER BY user_id LIMIT $3`

// TopicSubscribers implements store.Store.
func (c *conn) TopicSubscribers(ctx context.Context, topic string, p store.Page) ([]string, string, error) {
	limit, err := p.Size()
	if err != nil {
		return nil, "", fmt.Errorf("postgres: topic subscribers: %w", err)
	}
	after := ""
	if p.Cursor != "" {
		keys, err := store.DecodeCursor(p.Cursor, 1)
		if err != nil {
			return nil, "", fmt.Errorf("postgres: topic subscribers: %w", err)
		}
		after = keys[0]
	}
	rows, err := c.q.Query(ctx, topicSubscribersQuery, topic, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: topic subscribers: %w", mapErr(err))
	}
	users, err := scanStrings(rows)
	if err != nil {
		return nil, "", fmt.Errorf("postgres: topic subscribers: %w", err)
	}
	if len(users) == 0 {
		// Tell an empty page from a missing topic.
		var one int
		if err := c.q.QueryRow(ctx, `SELECT 1 FROM topics WHERE name = $1`, topic).Scan(&one); err != nil {
			return nil, "", fmt.Errorf("postgres: topic subscribers: %w", mapErr(err))
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
func scanStrings(rows pgx.Rows) ([]string, error) {
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

func scanTopicItem(row pgx.Row) (store.TopicItem, error) {
	var (
		it      store.TopicItem
		expires *time.Time
	)
	if err := row.Scan(&it.Topic, &it.Seq, &it.ID, &it.Subject, &it.Content, &it.ContentType, &it.Sender,
		&it.CreatedAt, &expires); err != nil {
		return store.TopicItem{}, mapErr(err)
	}
	it.CreatedAt = it.CreatedAt.UTC()
	if expires != nil {
		it.ExpiresAt = expires.UTC()
	}
	return it, nil
}

// PutTopicItem implements store.Store. The topic's row lock orders
// concurrent publishes.
func (c *conn) PutTopicItem(ctx context.Context, item store.TopicItem) (store.TopicItem, bool, error) {
	if item.Topic == "" || item.ID == "" {
		return store.TopicItem{}, false, errors.New("postgres: put topic item: topic and id are required")
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
		var (
			retain int
			last   int64
		)
		if err := tx.q.QueryRow(ctx,
			`SELECT retain, last_seq FROM topics WHERE name = $1 FOR UPDATE`, item.Topic).Scan(&retain, &last); err != nil {
			return mapErr(err)
		}
		existing, err := scanTopicItem(tx.q.QueryRow(ctx,
			`SELECT `+topicItemColumns+` FROM topic_items WHERE topic = $1 AND id = $2`, item.Topic, item.ID))
		if err == nil {
			got, inserted = existing, false
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		item.Seq = last + 1
		if _, err := tx.q.Exec(ctx,
			`INSERT INTO topic_items (`+topicItemColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			item.Topic, item.Seq, item.ID, item.Subject, bytea(item.Content), item.ContentType, item.Sender,
			item.CreatedAt, nullTime(item.ExpiresAt)); err != nil {
			return mapErr(err)
		}
		if _, err := tx.q.Exec(ctx, `UPDATE topics SET last_seq = $2 WHERE name = $1`, item.Topic, item.Seq); err != nil {
			return mapErr(err)
		}
		got, inserted = item, true
		return tx.trimTopic(ctx, item.Topic, retain)
	})
	if err != nil {
		return store.TopicItem{}, false, fmt.Errorf("postgres: put topic item: %w", err)
	}
	return got, inserted, nil
}

const retainedItemsQuery = `SELECT ` + topicItemColumns + ` FROM topic_items
	WHERE topic = ANY ($1) AND (expires_at IS NULL OR expires_at > $2)
	ORDER BY topic, seq`

// RetainedItems implements store.Store.
func (c *conn) RetainedItems(ctx context.Context, topics []string, now time.Time) ([]store.TopicItem, error) {
	if topics == nil {
		topics = []string{}
	}
	rows, err := c.q.Query(ctx, retainedItemsQuery,
		topics, store.Timestamp(now))
	if err != nil {
		return nil, fmt.Errorf("postgres: retained items: %w", mapErr(err))
	}
	defer rows.Close()
	items := []store.TopicItem{}
	for rows.Next() {
		it, err := scanTopicItem(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: retained items: %w", err)
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: retained items: %w", mapErr(err))
	}
	return items, nil
}

// bytea maps nil to an empty value: content columns are NOT NULL.
func bytea(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
