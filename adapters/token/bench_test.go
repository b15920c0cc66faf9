package token_test

import (
	"testing"
	"time"

	"github.com/chatterly/chatterly/core/auth"
)

// BenchmarkVerify is the cost every authenticated request and /cable
// connection pays before the denylist lookup.
func BenchmarkVerify(b *testing.B) {
	s := newSigner(b)
	now := time.Now()
	tok, err := s.Sign(auth.Claims{UserID: 42, ID: "9b2f6c1e-0000-4000-8000-000000000001", IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(tok, now); err != nil {
			b.Fatal(err)
		}
	}
}
