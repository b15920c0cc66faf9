package memory_test

import (
	"testing"
	"time"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/ports/ws/wstest"
)

func TestSessions(t *testing.T) {
	wstest.RunSessions(t, func(*testing.T) wstest.Sessions { return memory.NewSessions(time.Now) })
}
