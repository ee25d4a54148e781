package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrLimit means a write would exceed a bound the record sets (a topic's
// MaxSubscribers); nothing was written.
var ErrLimit = errors.New("store: limit reached")

// InboxItem is a notification kept for a user until it is acknowledged,
// deleted or expires (a "stored" notification).
type InboxItem struct {
	// UserID is the recipient.
	UserID string
	// ID identifies the notification; (UserID, ID) is unique for as long
	// as the item or its tombstone is kept (see Inbox).
	ID string
	// Subject says what the notification is about.
	Subject string
	// Content is the producer's payload, opaque to the store.
	Content []byte
	// ContentType describes Content; empty for opaque bytes.
	ContentType string
	// Sender is who sent it: a user id or a free-form system name.
	Sender string
	// CreatedAt is when it was sent, as the caller says; the zero time
	// means now. Stored as Timestamp returns it.
	CreatedAt time.Time
	// ExpiresAt is when it stops being delivered; the zero time for never.
	ExpiresAt time.Time
	// Seq is set by the store: it increases with every item inserted for
	// a user, in commit order, so a listing in Seq order is the order the
	// items were kept in and an item inserted later never lands behind a
	// cursor. Values have gaps and mean nothing across users.
	Seq int64
}

// Inbox holds the users' kept notifications.
//
// An item leaves the inbox when it is acknowledged or deleted (it is no
// longer listed) or when it expires. Its row stays behind as a tombstone
// for the de-duplication window: until PruneInbox removes it, PutInbox
// does not insert an item of the same (UserID, ID) again.
type Inbox interface {
	// PutInbox inserts items in one transaction, durable when it returns
	// nil. inserted[i] is false for an item whose (UserID, ID) the store
	// already holds (pending, acknowledged, deleted or expired, until
	// pruned) or that repeats an earlier item of the same call; such an
	// item changes nothing. Every item needs a UserID and an ID.
	PutInbox(ctx context.Context, items []InboxItem) (inserted []bool, err error)
	// Inbox lists a user's pending items (neither acknowledged nor
	// deleted, and ExpiresAt zero or after now) in Seq order.
	Inbox(ctx context.Context, userID string, now time.Time, p Page) (items []InboxItem, next string, err error)
	// CountInbox counts the items Inbox would list.
	CountInbox(ctx context.Context, userID string, now time.Time) (int, error)
	// AckInbox marks the user's items with these ids acknowledged at now:
	// no longer listed. It returns how many of them were pending; unknown
	// ids and items no longer pending are ignored.
	AckInbox(ctx context.Context, userID string, ids []string, now time.Time) (int, error)
	// DeleteInbox removes the user's items with these ids from the inbox
	// at now. It is AckInbox under another name (the store keeps no
	// difference between the two), kept apart for callers' clarity.
	DeleteInbox(ctx context.Context, userID string, ids []string, now time.Time) (int, error)
	// PruneInbox deletes at most limit rows that left the inbox before
	// now-keepTombstones: acknowledged or deleted items, and items that
	// expired. It returns how many it deleted; a janitor calls it until
	// that is less than limit. keepTombstones is the de-duplication
	// window and must not be negative; limit must be positive.
	PruneInbox(ctx context.Context, now time.Time, keepTombstones time.Duration, limit int) (int, error)
}

// Topic is a named channel users subscribe to; it keeps its last Retain
// items published with retain.
type Topic struct {
	// Name is unique; topics list in byte order of their names.
	Name string
	// Retain is how many retained items the topic keeps, 0 or more.
	Retain int
	// ClientsMaySubscribe lets clients subscribe themselves; the store
	// only records it.
	ClientsMaySubscribe bool
	// MaxSubscribers bounds the subscribers Subscribe admits; 0 for no
	// bound. Lowering it keeps the subscribers above the bound.
	MaxSubscribers int
	// CreatedAt is set by the store when the topic is created.
	CreatedAt time.Time
	// Subscribers is the number of subscribers, set by the store.
	Subscribers int
}

// TopicItem is an item retained by a topic.
type TopicItem struct {
	Topic string
	// Seq is set by the store: 1 for the topic's first item, then one
	// more for each item inserted.
	Seq int64
	// ID identifies the item; (Topic, ID) is unique among the items the
	// topic retains.
	ID          string
	Subject     string
	Content     []byte
	ContentType string
	Sender      string
	// CreatedAt is when it was published, as the caller says; the zero
	// time means now.
	CreatedAt time.Time
	// ExpiresAt is when it stops being delivered; the zero time for never.
	ExpiresAt time.Time
}

// Topics holds topics, their subscriptions and their retained items.
type Topics interface {
	// PutTopic creates the topic t.Name, or updates the options (Retain,
	// ClientsMaySubscribe, MaxSubscribers) of the existing one, keeping
	// its CreatedAt, subscriptions and items, except that a lower Retain
	// deletes the oldest items beyond it. It returns the topic as stored.
	PutTopic(ctx context.Context, t Topic) (Topic, error)
	// Topic returns the topic with that name, or ErrNotFound.
	Topic(ctx context.Context, name string) (Topic, error)
	// DeleteTopic deletes a topic with its subscriptions and items, or
	// returns ErrNotFound.
	DeleteTopic(ctx context.Context, name string) error
	// ListTopics returns a page of topics ordered by name.
	ListTopics(ctx context.Context, p Page) (topics []Topic, next string, err error)
	// Subscribe subscribes users to a topic and returns how many were not
	// subscribed yet. ErrNotFound when the topic does not exist; ErrLimit,
	// subscribing nobody, when the new subscribers would take the topic
	// past MaxSubscribers.
	Subscribe(ctx context.Context, topic string, userIDs []string) (changed int, err error)
	// Unsubscribe removes users from a topic and returns how many were
	// subscribed; ErrNotFound when the topic does not exist.
	Unsubscribe(ctx context.Context, topic string, userIDs []string) (changed int, err error)
	// UserTopics lists the topics a user subscribes to, by name.
	UserTopics(ctx context.Context, userID string) ([]string, error)
	// TopicSubscribers returns a page of a topic's subscribers ordered by
	// user id; ErrNotFound when the topic does not exist.
	TopicSubscribers(ctx context.Context, topic string, p Page) (userIDs []string, next string, err error)
	// PutTopicItem appends an item to a topic (the store sets Seq) and
	// deletes the items beyond the topic's last Retain, in one
	// transaction; with Retain 0 nothing stays. It returns the item as
	// stored and inserted true; when the topic still retains an item of
	// the same ID, it returns that item and inserted false and changes
	// nothing. ErrNotFound when the topic does not exist.
	PutTopicItem(ctx context.Context, item TopicItem) (stored TopicItem, inserted bool, err error)
	// RetainedItems returns the items of these topics whose ExpiresAt is
	// zero or after now, ordered by topic name, then Seq. Unknown topics
	// have no items.
	RetainedItems(ctx context.Context, topics []string, now time.Time) ([]TopicItem, error)
}

// LoginPending is the first read of the notification service at every
// login: most users have no pending item and no topic, and for them it is
// the only one. It takes the users of many logins at once.
type LoginPending interface {
	// UsersPending reports, in one read, for each of userIDs (repeats
	// allowed), whether Inbox would list at least one of the user's items
	// at now and whether UserTopics would list at least one topic:
	// pending[i] answers for userIDs[i].
	UsersPending(ctx context.Context, userIDs []string, now time.Time) (pending []Pending, err error)
}

// Pending is what UsersPending answers for one user.
type Pending struct {
	// Inbox is true when the user has a pending inbox item.
	Inbox bool
	// Topics is true when the user subscribes to a topic.
	Topics bool
}

// CheckInboxItems returns the error PutInbox gives for items it refuses:
// an item without a UserID or an ID. The implementations share it.
func CheckInboxItems(items []InboxItem) error {
	for i, it := range items {
		if it.UserID == "" || it.ID == "" {
			return fmt.Errorf("inbox item %d: user id %q and id %q: both are required", i, it.UserID, it.ID)
		}
	}
	return nil
}

// CheckTopic returns the error PutTopic gives for a topic it refuses: no
// name, or a negative Retain or MaxSubscribers. The implementations share
// it.
func CheckTopic(t Topic) error {
	if t.Name == "" || t.Retain < 0 || t.MaxSubscribers < 0 {
		return fmt.Errorf("topic %q (retain %d, max subscribers %d): want a name, retain >= 0 and max subscribers >= 0",
			t.Name, t.Retain, t.MaxSubscribers)
	}
	return nil
}

// CheckUserIDs returns the error Subscribe and Unsubscribe give for an
// empty user id. The implementations share it.
func CheckUserIDs(ids []string) error {
	for i, id := range ids {
		if id == "" {
			return fmt.Errorf("user id %d is empty", i)
		}
	}
	return nil
}
