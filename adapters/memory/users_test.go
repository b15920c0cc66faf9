package memory_test

import (
	"testing"
	"time"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core/users"
	"github.com/chatterly/chatterly/core/users/userstest"
)

func TestUserStore(t *testing.T) {
	userstest.RunStore(t, func(*testing.T) users.Store { return memory.NewUserStore() })
}

func TestUserStoreCached(t *testing.T) {
	// The cache in front of a store keeps its contract.
	userstest.RunStore(t, func(*testing.T) users.Store { return users.NewCache(memory.NewUserStore(), time.Hour, nil) })
}

func TestUserStoreShared(t *testing.T) {
	// The suite must also hold when its subtests share one store.
	shared := memory.NewUserStore()
	userstest.RunStore(t, func(*testing.T) users.Store { return shared })
}
