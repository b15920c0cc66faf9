package chat_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/chatterly/chatterly/core/chat"
)

// BenchmarkHistoryPage renders a full page of 50 messages with authors and
// reactions, over the in-memory stores: the service's own cost per page.
func BenchmarkHistoryPage(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b)
	a, c := f.user(b, "alice"), f.user(b, "carol")
	conv := f.group(b, a, c)
	for i := range 60 {
		m, _, err := f.svc.SendMessage(ctx, f.as(b, a), conv, chat.MessageInput{Content: "message " + strconv.Itoa(i)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.svc.AddReaction(ctx, c, m.ID, "👍"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.svc.History(ctx, a, conv, 0, 50, true); err != nil {
			b.Fatal(err)
		}
	}
}
