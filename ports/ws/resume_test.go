package ws

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/chatterly/chatterly/core/chat"
)

// queued is what c would write, in order, as strings.
func queued(c *conn) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.queue))
	for i, f := range c.queue {
		out[i] = string(f)
	}
	c.queue, c.queued = nil, 0
	return out
}

// A subscription catching up gets the replay, then the live events held
// meanwhile, each event once, in offset order; afterwards a late copy of
// an event already sent is dropped, and a new epoch starts afresh.
func TestCatchUpSendsEachEventOnceInOrder(t *testing.T) {
	c := &conn{srv: New(Config{}, Deps{Broker: nopBroker{}}), writing: true} // writing: no writer goroutine, frames stay queued
	sub := &subscription{conn: c, streams: []string{"s", "t"}, catch: &catchUp{holding: true}}
	at := func(stream, epoch string, offset uint64) heldFrame {
		return heldFrame{stream, chat.Position{Epoch: epoch, Offset: offset}, []byte(stream + "@" + epoch + ":" + string(rune('0'+offset)))}
	}
	live := func(f heldFrame) { sub.offer(f.stream, f.pos, f.frame) }

	// Live events arrive while the history is read: 5 and 6 of s (5 is
	// also in the replay), 1 of t, and a transient notice.
	live(at("s", "e", 5))
	live(at("s", "e", 6))
	live(at("t", "e", 1))
	sub.offer("s", chat.Position{}, []byte("typing"))
	assert.Empty(t, queued(c), "held until the replay")

	sub.release([]heldFrame{at("s", "e", 3), at("s", "e", 4), at("s", "e", 5)}, []byte("confirm"))
	assert.Equal(t, []string{"s@e:3", "s@e:4", "s@e:5", "s@e:6", "t@e:1", "typing", "confirm"}, queued(c))

	tests := []struct {
		name string
		f    heldFrame
		want []string
	}{
		{"a late copy of one sent is dropped", at("s", "e", 6), []string{}},
		{"an older one too", at("s", "e", 2), []string{}},
		{"the next goes out", at("s", "e", 7), []string{"s@e:7"}},
		{"another stream keeps its own count", at("t", "e", 2), []string{"t@e:2"}},
		{"a new epoch starts afresh", at("s", "f", 1), []string{"s@f:1"}},
	}
	for _, tt := range tests {
		live(tt.f)
		assert.Equal(t, tt.want, queued(c), tt.name)
	}
	sub.release(nil, nil)
	assert.Empty(t, queued(c), "releasing a subscription not held sends nothing")
}
