// Package token signs and verifies the JWTs that authenticate clients.
package token

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/auth"
)

// MinSecretBytes is the shortest secret NewSigner accepts: HS256 is only as
// strong as its key, and RFC 7518 asks for at least the hash size.
const MinSecretBytes = 32

// maxTokenBytes bounds the work spent on a token before its signature is
// checked. Ours are about 250 bytes.
const maxTokenBytes = 8 << 10

// maxVerified bounds the cache of verified tokens: about 300 bytes each.
// A client sends the same token with every request until it expires, and
// jwx spends ~20 µs and 200 allocations on each verification, a tenth of
// the server's CPU per message sent.
const maxVerified = 4096

var _ auth.Tokens = (*Signer)(nil)

// Signer signs and verifies HS256 JWTs with one shared secret. Its tokens
// carry the claims devise-jwt gives ("sub" as a decimal string, "jti",
// "iat", "exp", "scp":"user"), so tokens of the Rails app and of this one
// are interchangeable while both share the secret.
type Signer struct {
	key []byte

	mu sync.Mutex
	// verified holds tokens that passed Verify, by their exact text, with
	// their claims. Only expiry can change the answer for the same bytes;
	// revocation is the denylist's business, asked on every request.
	verified map[string]auth.Claims
}

// NewSigner returns a Signer keyed with secret, which must have at least
// MinSecretBytes bytes.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < MinSecretBytes {
		return nil, core.E(core.Internal, fmt.Sprintf("token: the secret has %d bytes; it needs at least %d", len(secret), MinSecretBytes))
	}
	return &Signer{key: bytes.Clone(secret), verified: make(map[string]auth.Claims)}, nil
}

// Sign returns a compact HS256 JWT carrying c. It refuses claims that
// Verify would refuse (no user, no id, no expiry), with an Internal error.
func (s *Signer) Sign(c auth.Claims) (string, error) {
	switch {
	case c.UserID <= 0:
		return "", core.E(core.Internal, fmt.Sprintf("token: cannot sign user id %d", c.UserID))
	case c.ID == "":
		return "", core.E(core.Internal, "token: cannot sign without a jti")
	case c.ExpiresAt.IsZero():
		return "", core.E(core.Internal, "token: cannot sign without an expiry")
	}
	b := jwt.NewBuilder().
		Subject(strconv.FormatInt(c.UserID, 10)).
		JwtID(c.ID).
		Expiration(c.ExpiresAt).
		Claim("scp", "user")
	if !c.IssuedAt.IsZero() {
		b = b.IssuedAt(c.IssuedAt)
	}
	t, err := b.Build()
	if err != nil {
		return "", core.Wrap(core.Internal, "token: build claims", err)
	}
	signed, err := jwt.Sign(t, jwt.WithKey(jwa.HS256, s.key))
	if err != nil {
		return "", core.Wrap(core.Internal, "token: sign", err)
	}
	return string(signed), nil
}

// Reasons a token is refused. They are wrapped for logs; clients see only
// auth.MsgSignIn. None repeats anything from the token.
var (
	errMalformed = errors.New("token: malformed")
	errAlgorithm = errors.New("token: algorithm is not HS256")
	errExpired   = errors.New("token: expired")
	errSignature = errors.New("token: bad signature")
	errClaims    = errors.New("token: claims missing or invalid")
	errPanic     = errors.New("token: verification panicked")
)

// Verify checks that token is a compact JWS whose header says HS256, whose
// signature is ours, whose exp is after now and whose jti and sub are
// present (sub a positive decimal integer), and returns its claims. iat is
// not checked: devise-jwt does not check it either, and instances whose
// clocks are a little apart would otherwise refuse each other's fresh
// tokens. Header fields that point at other keys (kid, jku, x5u, jwk) are
// ignored: only our key is ever used. Every defect gives Unauthenticated
// with auth.MsgSignIn.
func (s *Signer) Verify(token string, now time.Time) (auth.Claims, error) {
	s.mu.Lock()
	c, ok := s.verified[token]
	if ok && !now.Before(c.ExpiresAt) {
		delete(s.verified, token)
	}
	s.mu.Unlock()
	switch {
	case ok && now.Before(c.ExpiresAt):
		return c, nil
	case ok:
		return auth.Claims{}, refuse(errExpired)
	}
	c, err := s.verify(token, now)
	if err != nil {
		return auth.Claims{}, err
	}
	s.mu.Lock()
	if len(s.verified) >= maxVerified {
		// Evicting an arbitrary entry costs a cached client one
		// verification; a full cache is many clients, not one's tokens.
		for k := range s.verified {
			delete(s.verified, k)
			break
		}
	}
	// A copy, so the cache does not pin the request the token came in.
	s.verified[strings.Clone(token)] = c
	s.mu.Unlock()
	return c, nil
}

// verify is Verify without the cache.
func (s *Signer) verify(token string, now time.Time) (c auth.Claims, err error) {
	// A token is attacker input: a panic in the JWT library must cost a
	// 401, not the connection.
	defer func() {
		if recover() != nil {
			c, err = auth.Claims{}, refuse(errPanic)
		}
	}()
	if !wellFormed(token) {
		return auth.Claims{}, refuse(errMalformed)
	}
	payload, err := jws.Verify([]byte(token), jws.WithCompact(), jws.WithKeyProvider(jws.KeyProviderFunc(s.provideKey)))
	switch {
	case errors.Is(err, errAlgorithm):
		return auth.Claims{}, refuse(errAlgorithm)
	case err != nil:
		return auth.Claims{}, refuse(errSignature)
	}
	payload, err = dropNullAudience(payload)
	if err != nil {
		return auth.Claims{}, refuse(errClaims)
	}
	t, err := jwt.Parse(payload,
		jwt.WithVerify(false), // just done, on the token rather than its payload
		jwt.WithValidate(true),
		// The default validators include iat, which is deliberately not checked.
		jwt.WithResetValidators(true),
		jwt.WithValidator(jwt.IsExpirationValid()),
		jwt.WithValidator(jwt.IsNbfValid()),
		jwt.WithRequiredClaim(jwt.ExpirationKey),
		jwt.WithRequiredClaim(jwt.JwtIDKey),
		jwt.WithRequiredClaim(jwt.SubjectKey),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
		jwt.WithAcceptableSkew(0),
		jwt.WithTruncation(0),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired()):
		return auth.Claims{}, refuse(errExpired)
	case err != nil:
		return auth.Claims{}, refuse(errClaims)
	}
	// jwx takes an exp of 0 for "no expiry"; here every token expires.
	exp := t.Expiration()
	if exp.Unix() <= 0 || !now.Before(exp) {
		return auth.Claims{}, refuse(errExpired)
	}
	userID, ok := parseUserID(t.Subject())
	if !ok || t.JwtID() == "" {
		return auth.Claims{}, refuse(errClaims)
	}
	c = auth.Claims{UserID: userID, ID: t.JwtID(), ExpiresAt: exp.UTC()}
	if iat := t.IssuedAt(); !iat.IsZero() {
		c.IssuedAt = iat.UTC()
	}
	return c, nil
}

// provideKey hands jwx our key for a signature whose protected header says
// HS256, and nothing for any other: jwx would otherwise verify with the
// key's algorithm whatever the header claims.
func (s *Signer) provideKey(_ context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
	h := sig.ProtectedHeaders()
	if h == nil || h.Algorithm() != jwa.HS256 {
		return errAlgorithm
	}
	sink.Key(jwa.HS256, s.key)
	return nil
}

// wellFormed checks, before any parsing, that token is small, has the three
// parts of the compact serialization, that each part is canonical base64url
// and that the signature is an HMAC-SHA256. jwx checks the signature over
// the parts as it re-encodes them, so without the canonical check a token
// we signed could be respelled with other padding bits and still verify.
func wellFormed(token string) bool {
	if len(token) > maxTokenBytes {
		return false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	strict := base64.RawURLEncoding.Strict()
	var buf [maxTokenBytes]byte
	for i, part := range parts {
		// The decoder skips \r and \n even when strict, which would give a
		// token of ours more spellings (found by CI's fuzzing): only the
		// base64url alphabet may appear.
		if strings.IndexFunc(part, notBase64URL) >= 0 {
			return false
		}
		n, err := strict.Decode(buf[:], []byte(part))
		if err != nil || n == 0 || (i == 2 && n != sha256.Size) {
			return false
		}
	}
	return true
}

func notBase64URL(r rune) bool {
	switch {
	case 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z', '0' <= r && r <= '9', r == '-', r == '_':
		return false
	}
	return true
}

// dropNullAudience removes an "aud" claim whose value is null, which
// devise-jwt writes when no audience is configured and which jwx refuses to
// parse. It refuses a payload that is not a JSON object, which jwt.Parse
// would otherwise try to read as a nested token. Any other payload is
// returned unchanged.
func dropNullAudience(payload []byte) ([]byte, error) {
	if trimmed := bytes.TrimSpace(payload); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errClaims
	}
	if !bytes.Contains(payload, []byte(`"aud"`)) {
		return payload, nil
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, err
	}
	if aud, ok := claims[jwt.AudienceKey]; !ok || string(bytes.TrimSpace(aud)) != "null" {
		return payload, nil
	}
	delete(claims, jwt.AudienceKey)
	return json.Marshal(claims)
}

// parseUserID accepts what strconv.FormatInt writes for a positive id and
// nothing else: no sign, no leading zero, no spaces.
func parseUserID(sub string) (int64, bool) {
	if sub == "" || sub[0] < '1' || sub[0] > '9' {
		return 0, false
	}
	for i := 1; i < len(sub); i++ {
		if sub[i] < '0' || sub[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseInt(sub, 10, 64)
	return id, err == nil
}

func refuse(reason error) error {
	return core.Wrap(core.Unauthenticated, auth.MsgSignIn, reason)
}
