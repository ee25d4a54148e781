package client

import (
	"context"
	"errors"
	"fmt"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
)

// DeviceCredential returns the credential of a device id (10-128 printable
// ASCII characters) for Login or DialOptions.Authenticate. With create, an
// unknown device gets a new account.
func DeviceCredential(id string, create bool) *apiv1.AuthenticateRequest {
	return &apiv1.AuthenticateRequest{
		Credential: &apiv1.AuthenticateRequest_Device{Device: &apiv1.DeviceCredential{Id: id}},
		Create:     create,
	}
}

// CustomCredential returns the credential of an id from the game's own
// identity system (6-128 printable ASCII characters) for Login or
// DialOptions.Authenticate. With create, an unknown id gets a new account.
func CustomCredential(id string, create bool) *apiv1.AuthenticateRequest {
	return &apiv1.AuthenticateRequest{
		Credential: &apiv1.AuthenticateRequest_Custom{Custom: &apiv1.CustomCredential{Id: id}},
		Create:     create,
	}
}

// EmailCredential returns the credential of an email address and password
// for Login or DialOptions.Authenticate. With create, an unknown address
// gets a new account with this password.
func EmailCredential(email, password string, create bool) *apiv1.AuthenticateRequest {
	return &apiv1.AuthenticateRequest{
		Credential: &apiv1.AuthenticateRequest_Email{Email: &apiv1.EmailCredential{Email: email, Password: password}},
		Create:     create,
	}
}

// Login signs in with a credential and connects a socket in one step: the
// credential travels in the socket's Hello and the server's Welcome carries
// the new session tokens, so no HTTP request is made. It is the fast way to
// sign in: one connection and one round trip after the upgrade, where
// Authenticate followed by Dial makes an HTTP request first.
//
// opts configures the socket as for Dial, except that the credential is
// cred and opts.Session must be empty. Once connected, Socket.Session
// returns the session tokens (persist them to reconnect later with Dial)
// and Socket.Created reports whether the credential created the account.
// A socket with AutoReconnect reconnects and resumes with the session
// token from the Welcome, refreshes it over HTTP when it expired, and signs
// in with cred again only if the refresh token is refused.
//
// A refused credential is a *Error, for example ERROR_CODE_INVALID_CREDENTIALS
// for an unknown device without create, or ERROR_CODE_BAD_REQUEST for a
// malformed one.
func (c *Client) Login(ctx context.Context, cred *apiv1.AuthenticateRequest, opts DialOptions) (*Socket, error) {
	if cred == nil || cred.GetCredential() == nil {
		return nil, errors.New("client: login: a credential is required (DeviceCredential, CustomCredential or EmailCredential)")
	}
	if opts.Session != nil {
		return nil, errors.New("client: login: DialOptions.Session is set; Login signs in with the credential (use Dial to connect with session tokens)")
	}
	opts.Authenticate = cred
	s, err := c.dial(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("client: login: %w", err)
	}
	return s, nil
}

// Created reports whether the credential of the socket's first connection
// created the account (Welcome.created); false for a socket dialed with a
// session token.
func (s *Socket) Created() bool { return s.created }
