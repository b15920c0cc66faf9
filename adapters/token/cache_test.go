package token

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/auth"
)

// The cache of verified tokens answers as a fresh verification would: the
// same claims while the token lives, expired after, and it stays bounded.
func TestVerifiedCache(t *testing.T) {
	s, err := NewSigner([]byte(strings.Repeat("k", MinSecretBytes)))
	require.NoError(t, err)
	now := time.Date(2026, 3, 7, 18, 11, 58, 0, time.UTC)
	sign := func(jti string, ttl time.Duration) string {
		tok, err := s.Sign(auth.Claims{UserID: 7, ID: jti, IssuedAt: now, ExpiresAt: now.Add(ttl)})
		require.NoError(t, err)
		return tok
	}

	tok := sign("a", time.Minute)
	first, err := s.Verify(tok, now)
	require.NoError(t, err)
	require.Contains(t, s.verified, tok)
	again, err := s.Verify(tok, now.Add(59*time.Second))
	require.NoError(t, err)
	assert.Equal(t, first, again)

	_, err = s.Verify(tok, now.Add(time.Minute))
	assert.Equal(t, core.Unauthenticated, core.KindOf(err), "expired while cached")
	assert.NotContains(t, s.verified, tok, "an expired token leaves the cache")
	_, err = s.Verify(tok, now.Add(2*time.Minute))
	assert.Equal(t, core.Unauthenticated, core.KindOf(err), "and stays expired")

	bad := tok[:len(tok)-2] + "AA"
	_, err = s.Verify(bad, now)
	assert.Equal(t, core.Unauthenticated, core.KindOf(err))
	assert.NotContains(t, s.verified, bad, "refused tokens are not cached")

	for i := range maxVerified + 50 {
		tok := sign(strconv.Itoa(i), time.Hour)
		c, err := s.Verify(tok, now)
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(i), c.ID)
	}
	assert.Len(t, s.verified, maxVerified)
}
