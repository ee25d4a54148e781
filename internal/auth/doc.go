// Package auth turns credentials into sessions: it validates a device id,
// custom id or email and password, finds or creates the account in the
// store, and issues a signed session token and refresh token.
//
// The pieces stand alone and are wired together by Service:
//
//   - Hasher hashes and verifies passwords with argon2id, encoded as PHC
//     strings, with a bound on how many hashes run at once;
//   - TokenIssuer signs and verifies HS256 JWTs, with secret rotation;
//   - Service implements AuthService (Authenticate, Refresh) on top of an
//     AccountStore and is what the socket gateway asks to verify a token;
//   - NewHandler and HTTPHandler expose Service as a Connect service.
//
// Every error a client can cause is an *apierr.Error; anything else is an
// internal failure that the edge reports as ERROR_CODE_INTERNAL.
package auth
