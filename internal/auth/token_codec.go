package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"

	"github.com/google/uuid"
)

// The token encoding. A token is a compact JWS (RFC 7515):
// base64url(header) "." base64url(payload) "." base64url(HMAC-SHA256 of
// the first two parts), without padding. The header is always
// {"alg":"HS256","typ":"JWT"}, and the payload a JSON object of these
// claims, in this order, empty ones left out where marked:
//
//	sub       the account id
//	exp, iat  expiry and issue time, integer Unix seconds
//	jti       the token id, a UUID
//	username  the account's username (always present)
//	kind      "session" or "refresh" (always present)
//	fam       the token family (optional)
//	gen, ep   the refresh generation and session epoch (optional, 0 when absent)
//
// These are the bytes golang-jwt wrote for the same claims, which older
// nodes used: tokens issued by either verify on both. Decoding accepts any
// valid JSON object: unknown claims are skipped, and "nbf" is honoured.

// tokenHeader is the base64url encoding of {"alg":"HS256","typ":"JWT"}.
const tokenHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// b64 is the token's base64: URL alphabet, no padding, and, in decoding,
// zero trailing bits so that every token has one spelling.
var b64 = base64.RawURLEncoding.Strict()

var (
	// errOtherSecret is the cause of a token refusal when the token has
	// our header but its signature matches none of our secrets: it was
	// signed with another secret (another node's, or one rotated out) or
	// forged.
	errOtherSecret  = errors.New("signature does not match this node's token secret")
	errTokenExpired = errors.New("token expired")
)

// claimSet records which numeric claims a payload holds.
type claimSet uint8

const (
	claimExp claimSet = 1 << iota
	claimIat
	claimNbf
)

// wireClaims is a token's payload.
type wireClaims struct {
	Subject    string
	Username   string
	Kind       TokenKind
	TokenID    string
	Family     string
	IssuedAt   int64
	ExpiresAt  int64
	NotBefore  int64
	Generation int64
	Epoch      int64
	// present says which of IssuedAt, ExpiresAt and NotBefore were in the
	// payload. appendClaims writes exp and iat always, nbf never.
	present claimSet
}

func (c *wireClaims) has(s claimSet) bool { return c.present&s == s }

// appendClaims appends c's JSON payload to dst.
func appendClaims(dst []byte, c wireClaims) []byte {
	dst = append(dst, `{"sub":`...)
	dst = appendJSONString(dst, c.Subject)
	dst = append(dst, `,"exp":`...)
	dst = strconv.AppendInt(dst, c.ExpiresAt, 10)
	dst = append(dst, `,"iat":`...)
	dst = strconv.AppendInt(dst, c.IssuedAt, 10)
	if c.TokenID != "" {
		dst = append(dst, `,"jti":`...)
		dst = appendJSONString(dst, c.TokenID)
	}
	dst = append(dst, `,"username":`...)
	dst = appendJSONString(dst, c.Username)
	dst = append(dst, `,"kind":`...)
	dst = appendJSONString(dst, string(c.Kind))
	if c.Family != "" {
		dst = append(dst, `,"fam":`...)
		dst = appendJSONString(dst, c.Family)
	}
	if c.Generation != 0 {
		dst = append(dst, `,"gen":`...)
		dst = strconv.AppendInt(dst, c.Generation, 10)
	}
	if c.Epoch != 0 {
		dst = append(dst, `,"ep":`...)
		dst = strconv.AppendInt(dst, c.Epoch, 10)
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string, escaped exactly as
// encoding/json escapes it (HTML characters included).
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainJSONByte(s[i]) {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// plainJSONByte reports whether c stands for itself inside a JSON string
// that encoding/json writes.
func plainJSONByte(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// uuidV4 formats 16 random bytes as a version 4 UUID.
func uuidV4(b []byte) string {
	var u uuid.UUID
	copy(u[:], b)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u.String()
}

// macState is one reusable HMAC-SHA256 keyed with a secret, with scratch
// space.
type macState struct {
	h hash.Hash
	// buf holds the token being signed or verified, raw the payload
	// decoded.
	buf, raw []byte
	sum      [sha256.Size]byte
}

// macPool hands out macStates keyed with one secret: keying an HMAC costs
// two SHA-256 blocks and a few allocations, a reset one nothing.
type macPool struct{ p sync.Pool }

func newMACPool(secret []byte) *macPool {
	key := bytes.Clone(secret)
	mp := &macPool{}
	mp.p.New = func() any {
		return &macState{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 512)}
	}
	return mp
}

func (p *macPool) get() *macState { return p.p.Get().(*macState) }

func (p *macPool) put(m *macState) {
	if cap(m.buf) > 2*maxTokenLen || cap(m.raw) > 2*maxTokenLen {
		return
	}
	m.h.Reset()
	p.p.Put(m)
}

// maxJSONDepth bounds the nesting of unknown claims' values.
const maxJSONDepth = 32

// decodeClaims decodes a token payload: a JSON object whose known claims
// have the right types (strings, integers; null leaves a claim unset) and
// whose other members are any JSON values. It accepts only valid JSON.
func decodeClaims(b []byte) (wireClaims, error) {
	var c wireClaims
	d := jsonDecoder{b: b}
	d.space()
	if !d.eat('{') {
		return c, d.fail("payload is not a JSON object")
	}
	d.space()
	if !d.eat('}') {
		for {
			d.space()
			key, err := d.rawString()
			if err != nil {
				return c, err
			}
			d.space()
			if !d.eat(':') {
				return c, d.fail("missing ':'")
			}
			d.space()
			if err := d.member(&c, key); err != nil {
				return c, err
			}
			d.space()
			if d.eat(',') {
				continue
			}
			if d.eat('}') {
				break
			}
			return c, d.fail("missing ',' or '}'")
		}
	}
	d.space()
	if d.i != len(d.b) {
		return c, d.fail("data after the JSON object")
	}
	return c, nil
}

// jsonDecoder reads JSON from b at i.
type jsonDecoder struct {
	b []byte
	i int
}

func (d *jsonDecoder) fail(what string) error {
	return fmt.Errorf("claims JSON at offset %d: %s", d.i, what)
}

func (d *jsonDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDecoder) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *jsonDecoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// member decodes the value of the member named key (a raw string literal,
// quotes included) into c.
func (d *jsonDecoder) member(c *wireClaims, key []byte) error {
	// Keys are compared unescaped; one with escapes is decoded first.
	name := key[1 : len(key)-1]
	if bytes.IndexByte(key, '\\') >= 0 || !ascii(name) {
		var s string
		if err := json.Unmarshal(key, &s); err != nil {
			return d.fail("bad member name")
		}
		name = []byte(s)
	}
	var (
		str *string
		num *int64
		bit claimSet
	)
	switch string(name) {
	case "sub":
		str = &c.Subject
	case "username":
		str = &c.Username
	case "jti":
		str = &c.TokenID
	case "fam":
		str = &c.Family
	case "kind":
		// The two kinds decode to their constants, without a copy.
		switch {
		case d.literal(`"session"`):
			c.Kind = TokenSession
			return nil
		case d.literal(`"refresh"`):
			c.Kind = TokenRefresh
			return nil
		}
		s, ok, err := d.stringOrNull()
		if ok {
			c.Kind = TokenKind(s)
		}
		return err
	case "exp":
		num, bit = &c.ExpiresAt, claimExp
	case "iat":
		num, bit = &c.IssuedAt, claimIat
	case "nbf":
		num, bit = &c.NotBefore, claimNbf
	case "gen":
		num = &c.Generation
	case "ep":
		num = &c.Epoch
	default:
		return d.skip(0)
	}
	if str != nil {
		s, ok, err := d.stringOrNull()
		if ok {
			*str = s
		}
		return err
	}
	if d.literal("null") {
		return nil
	}
	n, err := d.integer()
	if err != nil {
		return err
	}
	*num = n
	c.present |= bit
	return nil
}

// stringOrNull decodes a string (ok), or null (not ok).
func (d *jsonDecoder) stringOrNull() (string, bool, error) {
	if d.literal("null") {
		return "", false, nil
	}
	raw, err := d.rawString()
	if err != nil {
		return "", false, err
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && ascii(inner) {
		return string(inner), true, nil
	}
	// Escapes and non-ASCII (invalid UTF-8 becomes U+FFFD) decode as
	// encoding/json decodes them.
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, d.fail("bad string")
	}
	return s, true, nil
}

// ascii reports whether b is all ASCII.
func ascii(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// rawString returns the string literal at i, quotes included, without
// decoding its escapes.
func (d *jsonDecoder) rawString() ([]byte, error) {
	start := d.i
	if !d.eat('"') {
		return nil, d.fail("want a string")
	}
	for d.i < len(d.b) {
		c := d.b[d.i]
		d.i++
		switch {
		case c == '"':
			return d.b[start:d.i], nil
		case c == '\\':
			if d.i >= len(d.b) {
				return nil, d.fail("unterminated string")
			}
			switch d.b[d.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i++
			case 'u':
				if d.i+5 > len(d.b) {
					return nil, d.fail("short \\u escape")
				}
				for _, h := range d.b[d.i+1 : d.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return nil, d.fail("bad \\u escape")
					}
				}
				d.i += 5
			default:
				return nil, d.fail("bad escape")
			}
		case c < 0x20:
			return nil, d.fail("control character in string")
		}
	}
	return nil, d.fail("unterminated string")
}

// integer decodes a JSON number that is an integer without fraction or
// exponent, in int64.
func (d *jsonDecoder) integer() (int64, error) {
	start := d.i
	if err := d.number(); err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	if err != nil {
		return 0, d.fail("want an integer")
	}
	return n, nil
}

// number skips a JSON number.
func (d *jsonDecoder) number() error {
	d.eat('-')
	switch c := d.peek(); {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return d.fail("want a number")
	}
	if d.eat('.') {
		if !d.digits() {
			return d.fail("want digits after '.'")
		}
	}
	if c := d.peek(); c == 'e' || c == 'E' {
		d.i++
		if !d.eat('+') {
			d.eat('-')
		}
		if !d.digits() {
			return d.fail("want digits in the exponent")
		}
	}
	return nil
}

func (d *jsonDecoder) digits() bool {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

func (d *jsonDecoder) literal(lit string) bool {
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// skip skips any JSON value, nested at most maxJSONDepth deep.
func (d *jsonDecoder) skip(depth int) error {
	if depth > maxJSONDepth {
		return d.fail("nested too deep")
	}
	switch c := d.peek(); {
	case c == '"':
		_, err := d.rawString()
		return err
	case c == '{', c == '[':
		d.i++
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		d.space()
		if d.eat(closing) {
			return nil
		}
		for {
			d.space()
			if c == '{' {
				if _, err := d.rawString(); err != nil {
					return err
				}
				d.space()
				if !d.eat(':') {
					return d.fail("missing ':'")
				}
				d.space()
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.space()
			if d.eat(',') {
				continue
			}
			if d.eat(closing) {
				return nil
			}
			return d.fail("missing ',' or closing bracket")
		}
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case d.literal("true"), d.literal("false"), d.literal("null"):
		return nil
	default:
		return d.fail("want a JSON value")
	}
}
