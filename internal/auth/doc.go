// Package auth turns credentials into sessions: it validates a device id,
// custom id or email and password, finds or creates the account in the
// store, and issues a signed session token and refresh token. It also
// makes sessions revocable.
//
// The pieces stand alone and are wired together by Service:
//
//   - Hasher hashes and verifies passwords with argon2id, encoded as PHC
//     strings, with a bound on how many hashes run at once;
//   - TokenIssuer signs and verifies HS256 JWTs, with secret rotation; it
//     encodes them itself, without reflection, in the bytes golang-jwt
//     wrote, so nodes of either kind accept each other's tokens;
//   - Service implements AuthService (Authenticate, Refresh) on top of an
//     AccountStore and is what the socket gateway asks to verify a token;
//   - NewHandler and HTTPHandler expose Service as a Connect service, and
//     NewAdminHandler and AdminHTTPHandler expose the operator's
//     AccountService (revoke sessions, disable, enable).
//
// # Revocation
//
// Every login starts a token family: its session and refresh tokens carry
// the family id, the refresh token's generation in the family's chain and
// the account's session epoch. A refresh token works once: Refresh
// consumes it in the store and issues the next generation; presenting a
// consumed one again revokes the family (reuse detection). RevokeSessions
// increments the account's epoch, which invalidates every token issued
// before. VerifySession, on every socket login, checks a token against an
// in-memory cache of restricted accounts (revoked epoch, disabled,
// deleted) and revoked families, never against the store. Each node loads
// the cache at Start, reloads it every Config.RevocationSync, and applies
// changes announced on the bus (RevocationSubject) as they happen.
//
// # Password logins
//
// Email logins cost an argon2id hash. Service bounds how many run or wait
// for the Hasher at once, in all and per client address (WithClientIP),
// and answers BUSY at once above the bounds, so a flood cannot queue
// everyone's logins behind the hasher. Device and custom logins are not
// bounded this way.
//
// # One secret per cluster
//
// Every node of a cluster must share the token secret, or a token issued
// by one node is refused by the others. A token with our header whose
// signature matches none of this node's secrets makes Service log a
// warning saying so, at most once per OtherSecretWarnEvery.
//
// Every error a client can cause is an *apierr.Error; anything else is an
// internal failure that the edge reports as ERROR_CODE_INTERNAL.
package auth
