package token_test

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/adapters/token"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/auth"
)

var (
	secret      = []byte("0123456789abcdef0123456789abcdef-test-secret")
	otherSecret = []byte("fedcba9876543210fedcba9876543210-other-secret")
	// now is fixed so that the fuzz corpus stays valid; tokens are checked at it.
	now = time.Date(2026, 3, 7, 18, 11, 58, 0, time.UTC)
)

func newSigner(t testing.TB) *token.Signer {
	t.Helper()
	s, err := token.NewSigner(secret)
	require.NoError(t, err)
	return s
}

func TestNewSigner(t *testing.T) {
	tests := []struct {
		name    string
		secret  []byte
		wantErr bool
	}{
		{"nil", nil, true},
		{"31 bytes", make([]byte, 31), true},
		{"32 bytes", make([]byte, 32), false},
		{"64 bytes", make([]byte, 64), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := token.NewSigner(tt.secret)
			if tt.wantErr {
				require.Error(t, err)
				assert.Nil(t, s)
				return
			}
			require.NoError(t, err)
			assert.NotNil(t, s)
		})
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	s := newSigner(t)
	want := auth.Claims{UserID: 42, ID: "8a3e5f0c-1f0b-4c9e-9a59-2b1f0d6f7c11", IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour)}
	tok, err := s.Sign(want)
	require.NoError(t, err)

	got, err := s.Verify(tok, now)
	require.NoError(t, err)
	assert.Equal(t, want.UserID, got.UserID)
	assert.Equal(t, want.ID, got.ID)
	assert.True(t, want.IssuedAt.Equal(got.IssuedAt), "iat %v, want %v", got.IssuedAt, want.IssuedAt)
	assert.True(t, want.ExpiresAt.Equal(got.ExpiresAt), "exp %v, want %v", got.ExpiresAt, want.ExpiresAt)

	// The wire shape devise-jwt clients and the Rails app expect.
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	var header map[string]any
	decodeSegment(t, parts[0], &header)
	assert.Equal(t, "HS256", header["alg"])
	var claims map[string]any
	decodeSegment(t, parts[1], &claims)
	assert.Equal(t, "42", claims["sub"], "sub is a decimal string")
	assert.Equal(t, want.ID, claims["jti"])
	assert.Equal(t, "user", claims["scp"])
	assert.InDelta(t, float64(now.Unix()), claims["iat"], 0)
	assert.InDelta(t, float64(now.Add(24*time.Hour).Unix()), claims["exp"], 0)
}

func TestSignRefusesClaimsVerifyWouldRefuse(t *testing.T) {
	s := newSigner(t)
	tests := []struct {
		name   string
		claims auth.Claims
	}{
		{"no user", auth.Claims{ID: "j", ExpiresAt: now.Add(time.Hour)}},
		{"negative user", auth.Claims{UserID: -1, ID: "j", ExpiresAt: now.Add(time.Hour)}},
		{"no jti", auth.Claims{UserID: 1, ExpiresAt: now.Add(time.Hour)}},
		{"no exp", auth.Claims{UserID: 1, ID: "j"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Sign(tt.claims)
			require.Error(t, err)
		})
	}
}

// validClaims are the claims of a good token at now, as maps so that cases
// can drop or change any of them.
func validClaims() map[string]any {
	return map[string]any{
		"sub": "42", "jti": "0b0e4a52-8c0d-4a55-b1c4-3f3d3cf6a0c7", "scp": "user",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func with(changes map[string]any) map[string]any {
	c := validClaims()
	for k, v := range changes {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

var hs256 = map[string]any{"alg": "HS256", "typ": "JWT"}

// TestVerifyRefuses is the attack table: every token must be refused with
// Unauthenticated and the sign-in message.
func TestVerifyRefuses(t *testing.T) {
	s := newSigner(t)
	good, err := s.Sign(auth.Claims{UserID: 42, ID: "jti-1", IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	require.NoError(t, err)
	goodParts := strings.Split(good, ".")
	attacker, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	tests := []struct {
		name  string
		token string
	}{
		// Algorithm confusion.
		{"alg none, unsigned", forge(t, "none", map[string]any{"alg": "none"}, validClaims(), nil)},
		{"alg none with typ, unsigned", forge(t, "none", map[string]any{"alg": "none", "typ": "JWT"}, validClaims(), nil)},
		{"alg none header with our HS256 signature", forge(t, "HS256", map[string]any{"alg": "none"}, validClaims(), secret)},
		{"alg NONE header with our HS256 signature", forge(t, "HS256", map[string]any{"alg": "NONE"}, validClaims(), secret)},
		{"no alg header with our HS256 signature", forge(t, "HS256", map[string]any{"typ": "JWT"}, validClaims(), secret)},
		{"HS512 signed with our secret", forge(t, "HS512", map[string]any{"alg": "HS512"}, validClaims(), secret)},
		{"HS384 signed with our secret", forge(t, "HS384", map[string]any{"alg": "HS384"}, validClaims(), secret)},
		{"HS512 header with our HS256 signature", forge(t, "HS256", map[string]any{"alg": "HS512"}, validClaims(), secret)},
		{"RS256 signed with the attacker's key", forgeRS256(t, attacker, validClaims())},
		{"RS256 header with our HS256 signature", forge(t, "HS256", map[string]any{"alg": "RS256"}, validClaims(), secret)},

		// Tampering and other keys.
		{"payload tampered, signature kept", goodParts[0] + "." + segment(t, with(map[string]any{"sub": "1"})) + "." + goodParts[2]},
		{"signature tampered", goodParts[0] + "." + goodParts[1] + "." + flipFirst(goodParts[2])},
		{"signature respelled with other padding bits", goodParts[0] + "." + goodParts[1] + "." + respell(goodParts[2])},
		{"signature missing", goodParts[0] + "." + goodParts[1] + "."},
		{"signed with another secret", forge(t, "HS256", hs256, validClaims(), otherSecret)},
		{"kid pointing elsewhere, another secret", forge(t, "HS256", map[string]any{"alg": "HS256", "kid": "attacker"}, validClaims(), otherSecret)},
		{"jku pointing elsewhere, another secret", forge(t, "HS256", map[string]any{"alg": "HS256", "jku": "https://attacker.example/jwks.json"}, validClaims(), otherSecret)},
		{"x5u pointing elsewhere, another secret", forge(t, "HS256", map[string]any{"alg": "HS256", "x5u": "https://attacker.example/cert.pem"}, validClaims(), otherSecret)},
		{"embedded jwk of the attacker", forge(t, "HS256", map[string]any{"alg": "HS256", "jwk": map[string]any{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(otherSecret)}}, validClaims(), otherSecret)},

		// Claims, all signed with our secret.
		{"expired", forge(t, "HS256", hs256, with(map[string]any{"exp": now.Add(-time.Second).Unix()}), secret)},
		{"expiring now", forge(t, "HS256", hs256, with(map[string]any{"exp": now.Unix()}), secret)},
		{"exp missing", forge(t, "HS256", hs256, with(map[string]any{"exp": nil}), secret)},
		{"exp zero", forge(t, "HS256", hs256, with(map[string]any{"exp": 0}), secret)},
		{"exp negative", forge(t, "HS256", hs256, with(map[string]any{"exp": -1}), secret)},
		{"exp not a number", forge(t, "HS256", hs256, with(map[string]any{"exp": "tomorrow"}), secret)},
		{"nbf in the future", forge(t, "HS256", hs256, with(map[string]any{"nbf": now.Add(time.Minute).Unix()}), secret)},
		{"jti missing", forge(t, "HS256", hs256, with(map[string]any{"jti": nil}), secret)},
		{"jti empty", forge(t, "HS256", hs256, with(map[string]any{"jti": ""}), secret)},
		{"sub missing", forge(t, "HS256", hs256, with(map[string]any{"sub": nil}), secret)},
		{"sub empty", forge(t, "HS256", hs256, with(map[string]any{"sub": ""}), secret)},
		{"sub non-numeric", forge(t, "HS256", hs256, with(map[string]any{"sub": "alice"}), secret)},
		{"sub zero", forge(t, "HS256", hs256, with(map[string]any{"sub": "0"}), secret)},
		{"sub negative", forge(t, "HS256", hs256, with(map[string]any{"sub": "-42"}), secret)},
		{"sub with plus sign", forge(t, "HS256", hs256, with(map[string]any{"sub": "+42"}), secret)},
		{"sub with leading zero", forge(t, "HS256", hs256, with(map[string]any{"sub": "042"}), secret)},
		{"sub with space", forge(t, "HS256", hs256, with(map[string]any{"sub": " 42"}), secret)},
		{"sub past int64", forge(t, "HS256", hs256, with(map[string]any{"sub": "9223372036854775808"}), secret)},
		{"sub as a JSON number", forge(t, "HS256", hs256, with(map[string]any{"sub": 42}), secret)},
		{"payload not JSON", forgeRaw("HS256", segment(t, hs256), base64.RawURLEncoding.EncodeToString([]byte("not json")), secret)},
		{"payload a nested token", forgeRaw("HS256", segment(t, hs256), base64.RawURLEncoding.EncodeToString([]byte(forge(t, "none", map[string]any{"alg": "none"}, validClaims(), nil))), secret)},
		{"header not JSON", forgeRaw("HS256", base64.RawURLEncoding.EncodeToString([]byte("{alg")), segment(t, validClaims()), secret)},

		// Garbage.
		{"empty", ""},
		{"one dot", "."},
		{"two dots", ".."},
		{"a.b.c", "a.b.c"},
		{"four parts", good + ".x"},
		{"not base64", "!!!.@@@.###"},
		{"1 MB", strings.Repeat("a", 1<<20)},
		{"1 MB with dots", strings.Repeat("a", 1<<20) + "." + goodParts[1] + "." + goodParts[2]},
		{"JSON serialization", jsonSerialization(t, good)},
		{"bearer prefix kept", "Bearer " + good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := s.Verify(tt.token, now)
			require.Error(t, err)
			assert.Equal(t, auth.Claims{}, c)
			assert.Equal(t, core.Unauthenticated, core.KindOf(err), "%v", err)
			var ce *core.Error
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, auth.MsgSignIn, ce.Message)
			t.Logf("refused: %v", ce.Err)
		})
	}
}

// TestVerifyAccepts covers what the attack table must not catch.
func TestVerifyAccepts(t *testing.T) {
	s := newSigner(t)
	tests := []struct {
		name  string
		token string
		at    time.Time
	}{
		{"ours", forge(t, "HS256", hs256, validClaims(), secret), now},
		{"a second before exp", forge(t, "HS256", hs256, validClaims(), secret), now.Add(time.Hour - time.Second)},
		// Another instance whose clock runs ahead may have issued it.
		{"iat in the future", forge(t, "HS256", hs256, with(map[string]any{"iat": now.Add(time.Minute).Unix()}), secret), now},
		{"iat missing", forge(t, "HS256", hs256, with(map[string]any{"iat": nil}), secret), now},
		{"kid ignored", forge(t, "HS256", map[string]any{"alg": "HS256", "kid": "attacker"}, validClaims(), secret), now},
		{"jku ignored", forge(t, "HS256", map[string]any{"alg": "HS256", "jku": "https://attacker.example/jwks.json"}, validClaims(), secret), now},
		{"x5u ignored", forge(t, "HS256", map[string]any{"alg": "HS256", "x5u": "https://attacker.example/cert.pem"}, validClaims(), secret), now},
		// What devise-jwt (warden-jwt_auth) issues.
		{"header without typ", forge(t, "HS256", map[string]any{"alg": "HS256"}, validClaims(), secret), now},
		{"devise-jwt shape, null aud", forgeRaw("HS256", segment(t, map[string]any{"alg": "HS256"}),
			base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"42","scp":"user","aud":null,"iat":`+itoa(now.Unix())+`,"exp":`+itoa(now.Add(time.Hour).Unix())+`,"jti":"0b0e4a52-8c0d-4a55-b1c4-3f3d3cf6a0c7"}`)), secret), now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := s.Verify(tt.token, tt.at)
			require.NoError(t, err)
			assert.Equal(t, int64(42), c.UserID)
			assert.Equal(t, "0b0e4a52-8c0d-4a55-b1c4-3f3d3cf6a0c7", c.ID)
			assert.True(t, c.ExpiresAt.Equal(now.Add(time.Hour)), "exp %v", c.ExpiresAt)
		})
	}
}

// FuzzVerify checks that Verify never panics, refuses with Unauthenticated,
// and accepts only tokens whose HS256 signature, checked here without jwx,
// is ours, returning the claims they carry.
func FuzzVerify(f *testing.F) {
	s := newSigner(f)
	good, err := s.Sign(auth.Claims{UserID: 42, ID: "jti-1", IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	require.NoError(f, err)
	for _, seed := range []string{
		good, "", ".", "..", "a.b.c", "!!!.@@@.###", good + ".", good[:len(good)-1],
		forge(f, "none", map[string]any{"alg": "none"}, validClaims(), nil),
		forge(f, "HS512", map[string]any{"alg": "HS512"}, validClaims(), secret),
		forge(f, "HS256", map[string]any{"alg": "none"}, validClaims(), secret),
		forge(f, "HS256", hs256, with(map[string]any{"exp": 0}), secret),
		forge(f, "HS256", hs256, with(map[string]any{"sub": "0"}), secret),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := s.Verify(tok, now)
		if err != nil {
			assert.Equal(t, core.Unauthenticated, core.KindOf(err), "%v", err)
			assert.Equal(t, auth.Claims{}, c)
			return
		}
		i := strings.LastIndexByte(tok, '.')
		require.Positive(t, i)
		sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
		require.NoError(t, err)
		require.True(t, hmac.Equal(sig, sign(sha256.New, secret, tok[:i])), "verified a token we did not sign: %q", tok)
		parts := strings.Split(tok, ".")
		var header struct{ Alg string }
		decodeSegment(t, parts[0], &header)
		assert.Equal(t, "HS256", header.Alg)
		var claims struct {
			Sub string
			Jti string
			Exp int64
		}
		decodeSegment(t, parts[1], &claims)
		assert.Equal(t, claims.Sub, itoa(c.UserID))
		assert.Equal(t, claims.Jti, c.ID)
		assert.Equal(t, claims.Exp, c.ExpiresAt.Unix())
	})
}

// forge builds a compact JWS from header and claims, signed by alg ("none",
// "HS256", "HS384", "HS512") with key, whatever the header says.
func forge(t testing.TB, alg string, header, claims map[string]any, key []byte) string {
	t.Helper()
	return forgeRaw(alg, segment(t, header), segment(t, claims), key)
}

func forgeRaw(alg, header, payload string, key []byte) string {
	input := header + "." + payload
	var mac []byte
	switch alg {
	case "HS256":
		mac = sign(sha256.New, key, input)
	case "HS384":
		mac = sign(sha512.New384, key, input)
	case "HS512":
		mac = sign(sha512.New, key, input)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(mac)
}

func forgeRS256(t testing.TB, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	input := segment(t, map[string]any{"alg": "RS256", "typ": "JWT"}) + "." + segment(t, claims)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	require.NoError(t, err)
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func sign(h func() hash.Hash, key []byte, input string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(input))
	return m.Sum(nil)
}

func segment(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeSegment(t testing.TB, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, v))
}

// jsonSerialization respells a compact token in the JWS JSON serialization.
func jsonSerialization(t testing.TB, compact string) string {
	t.Helper()
	p := strings.Split(compact, ".")
	b, err := json.Marshal(map[string]any{"payload": p[1], "signatures": []map[string]any{{"protected": p[0], "signature": p[2]}}})
	require.NoError(t, err)
	return string(b)
}

// flipFirst changes the first character of a base64url string.
func flipFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// respell changes the lowest bit of the last character of an unpadded
// base64url encoding whose length is not a multiple of 4 (a signature's is
// 43), a bit no byte uses, so that it decodes, leniently, to the same bytes.
func respell(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[i^1])
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestVerifyRefusesRespelledParts checks that a token we signed stops
// verifying when its payload is spelled with other unused low bits: jwx
// computes the HMAC over the parts it re-encodes, so only our canonical
// check tells the two spellings apart. Both remainders that leave unused
// bits (2 and 3 characters past a multiple of 4) are covered.
func TestVerifyRefusesRespelledParts(t *testing.T) {
	s := newSigner(t)
	seen := map[int]bool{}
	for n := 1; len(seen) < 2 && n < 16; n++ {
		good, err := s.Sign(auth.Claims{UserID: 42, ID: strings.Repeat("j", n), IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
		require.NoError(t, err)
		parts := strings.Split(good, ".")
		rem := len(parts[1]) % 4
		if rem == 0 || seen[rem] {
			continue
		}
		seen[rem] = true
		_, err = s.Verify(good, now)
		require.NoError(t, err)
		_, err = s.Verify(parts[0]+"."+respell(parts[1])+"."+parts[2], now)
		require.Error(t, err, "payload length %d", len(parts[1]))
		assert.Equal(t, core.Unauthenticated, core.KindOf(err))
	}
	require.Len(t, seen, 2)
}

// The base64 decoder skips line breaks even in strict mode; a token of ours
// with one inserted is not ours.
func TestVerifyRefusesLineBreaks(t *testing.T) {
	s := newSigner(t)
	good, err := s.Sign(auth.Claims{UserID: 42, ID: "jti-1", IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	require.NoError(t, err)
	_, err = s.Verify(good, now)
	require.NoError(t, err)
	parts := strings.Split(good, ".")
	for i := range parts {
		for _, brk := range []string{"\n", "\r", "\r\n"} {
			bad := slices.Clone(parts)
			bad[i] = bad[i][:5] + brk + bad[i][5:]
			_, err := s.Verify(strings.Join(bad, "."), now)
			require.Error(t, err, "part %d with %q", i, brk)
			assert.Equal(t, core.Unauthenticated, core.KindOf(err))
		}
	}
}
