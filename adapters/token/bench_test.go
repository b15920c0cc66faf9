package token_test

import (
	"testing"
	"time"

	"github.com/chatterly/chatterly/adapters/token"
	"github.com/chatterly/chatterly/core/auth"
)

// BenchmarkVerify is the cost every authenticated request and /cable
// connection pays before the denylist lookup: "first" is a token this
// instance has not seen (jwx checks it), "again" one it verified before.
func BenchmarkVerify(b *testing.B) {
	now := time.Now()
	signed := func(s *token.Signer) string {
		tok, err := s.Sign(auth.Claims{UserID: 42, ID: "9b2f6c1e-0000-4000-8000-000000000001", IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		return tok
	}
	b.Run("first", func(b *testing.B) {
		tok := signed(newSigner(b))
		b.ReportAllocs()
		for b.Loop() {
			// A new signer has an empty cache; making one is a key copy.
			if _, err := newSigner(b).Verify(tok, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("again", func(b *testing.B) {
		s := newSigner(b)
		tok := signed(s)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Verify(tok, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
