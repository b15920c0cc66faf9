package memory_test

import (
	"sync/atomic"
	"testing"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core/chat/chattest"
)

// chatFixture wraps store for the contract. The memory store keeps no
// users, so any id will do for one.
func chatFixture(store *memory.ChatStore) chattest.Fixture {
	var lastUser atomic.Int64
	return chattest.Fixture{
		Store:   store,
		NewUser: func(*testing.T) int64 { return lastUser.Add(1) },
	}
}

func TestChatStore(t *testing.T) {
	chattest.RunStore(t, func(*testing.T) chattest.Fixture { return chatFixture(memory.NewChatStore()) })
}

func TestChatStoreShared(t *testing.T) {
	// The suite must also hold when its subtests share one store, and so
	// its users.
	shared := chatFixture(memory.NewChatStore())
	chattest.RunStore(t, func(*testing.T) chattest.Fixture { return shared })
}
