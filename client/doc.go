// Package client is the Go SDK for taisen: it signs in, keeps a realtime
// socket to a taisen node, with request/reply correlation, ordered pushes,
// heartbeats, and automatic reconnection that resumes the session and
// never delivers a push twice, and speaks the HTTP API (AuthService, as
// Connect) for token refresh and for applications that want the tokens
// before connecting.
//
// # Signing in
//
// Login is the fast path: the credential travels in the socket's first
// frame (Hello) and the Welcome returns the session tokens, so signing in
// and connecting take one WebSocket upgrade and one round trip, with no
// HTTP request:
//
//	c, err := client.New("http://127.0.0.1:7350")
//	if err != nil { ... }
//	sock, err := c.Login(ctx, client.DeviceCredential(deviceID, true),
//		client.DialOptions{AutoReconnect: true})
//	if err != nil { ... } // a *Error: invalid_credentials, bad_request, ...
//	defer sock.Close()
//	save(sock.Session())  // session and refresh tokens, for a later Dial
//	if sock.Created() { ... } // the credential created the account
//	go func() {
//		for p := range sock.Pushes() {
//			handle(p)
//		}
//	}()
//	out, err := sock.RPC(ctx, "taisen.echo", []byte("hi"))
//
// A socket opened by Login reconnects with the session token from the
// Welcome (refreshing it over HTTP when it expired) and resumes its
// session like any other.
//
// The two-step path authenticates over HTTP, then dials with the session
// tokens; use it to connect with tokens the application saved earlier:
//
//	auth, err := c.AuthenticateDevice(ctx, deviceID, true)
//	if err != nil { ... }
//	sock, err := c.Dial(ctx, client.DialOptions{Session: auth.Session, AutoReconnect: true})
//
// # Errors
//
// Every error the server reports for a request, over HTTP or on the socket,
// is a *Error carrying a stable realtimev1.ErrorCode; use errors.As or
// CodeOf. A socket that ends for good reports why through Err: ErrClosed
// after Close, a *CloseError when the server closed it (for example
// CLOSE_REASON_REPLACED when the user signed in elsewhere), or the network
// error when reconnecting was not enabled. Requests in flight when the
// connection drops fail with an error matching ErrDisconnected: the server
// may or may not have processed them.
//
// # Pushes and flow control
//
// A socket has one reader. It hands pushes to the application through the
// bounded channel returned by Pushes and waits when that channel is full;
// nothing is ever dropped. An application that stops reading therefore stops
// the reader: replies to requests are not read either, the server's outbound
// queue grows, and the server eventually closes the socket as slow
// (CLOSE_REASON_SLOW), after which the socket reconnects and resumes if
// AutoReconnect is set.
//
// # Notifications, topics and presence
//
// With DialOptions.Notifications set, the pushes of kind notify (the
// notification service's per-user notifications and topic items) arrive
// decoded on Notifications instead of Pushes, with the same flow control,
// and each notification id only once:
//
//	sock, err := c.Login(ctx, cred, client.DialOptions{AutoReconnect: true,
//		Notifications: &client.NotificationOptions{}})
//	...
//	for n := range sock.Notifications() {
//		process(n) // idempotently: delivery is at least once
//		if n.GetMode() == apiv1.NotifyMode_NOTIFY_MODE_STORED {
//			_ = sock.AckNotifications(n.GetId())
//		}
//	}
//
// Delivery is at least once. A stored notification is kept in the user's
// inbox until acknowledged (AckNotifications, or NotificationOptions.AutoAck)
// or deleted (DeleteNotifications): it arrives live, and again at every
// login, also after a reconnection that could not resume (EventReset) and
// on another node; a topic's retained items arrive on subscribe and at
// every login. The socket's Deduper remembers the last DefaultDedupSize
// notifications it handed over and drops copies of them (acknowledging a
// copy again when the application had acknowledged it, in case the first
// ack was lost); share one Deduper between the sockets a process opens for
// one user. A notification that the Deduper forgot, or that another
// process received, arrives again.
//
// The typed operations: ListInbox pages through the kept notifications;
// SubscribeTopic, UnsubscribeTopic and MyTopics manage the topics the user
// follows (those the server lets clients subscribe to); SetStatus sets
// the session's presence status; FollowPresence and UnfollowPresence
// follow other users, whose presence changes arrive on Pushes as pushes of
// kind presence (DecodePresence).
//
// # Reconnection
//
// With DialOptions.AutoReconnect, a socket that drops unexpectedly, or that
// the server closes with Disconnect.reconnect set (draining, idle timeout,
// slow reader, server error), reconnects with exponential backoff and
// jitter and asks to resume its session from the last push it delivered.
// When the session could be resumed, the missed pushes follow and Events
// reports EventResumed; when it could not (grace period over), the socket
// starts a fresh session, push sequence numbers restart at 1, and Events
// reports EventReset: the application should reload its state. A socket
// closed as replaced, kicked, logged out or with failed authentication
// never reconnects. An expired session token is refreshed with the refresh
// token before reconnecting.
package client
