package auth_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatterly/chatterly/adapters/memory"
	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/auth"
)

// bus is the broker and the gateways of several instances in one: what one
// publishes, every listener hears at once.
type bus struct {
	mu        sync.Mutex
	listeners map[string][]func([]byte)
}

func (b *bus) PublishTransient(ctx context.Context, stream string, payload []byte) error {
	return b.Publish(ctx, stream, payload)
}

func (b *bus) Publish(_ context.Context, stream string, payload []byte) error {
	b.mu.Lock()
	fns := slices.Clone(b.listeners[stream])
	b.mu.Unlock()
	for _, fn := range fns {
		fn(payload)
	}
	return nil
}

func (b *bus) Listen(_ context.Context, stream string, fn func([]byte)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.listeners == nil {
		b.listeners = map[string][]func([]byte){}
	}
	b.listeners[stream] = append(b.listeners[stream], fn)
	return func() {}, nil
}

// hearRevocation has svc hear, as from another instance, that jti is revoked.
func hearRevocation(t *testing.T, svc *auth.Service, jti string) {
	t.Helper()
	b := &bus{}
	_, err := svc.WatchRevocations(t.Context(), b)
	require.NoError(t, err)
	payload, err := json.Marshal(map[string]string{"jti": jti})
	require.NoError(t, err)
	require.NoError(t, b.Publish(t.Context(), auth.RevocationStream, payload))
}

// A logout on one instance ends, on every instance, the outage trust in the
// token and is passed on to what registered (the gateway, which closes the
// token's sockets); other tokens are not touched.
func TestLogoutReachesEveryInstance(t *testing.T) {
	ctx := context.Background()
	store, denylist, b := memory.NewUserStore(), memory.NewDenylist(), &bus{}
	tokens := &fakeTokens{issued: map[string]auth.Claims{}}
	instance := func() (*auth.Service, *[]string) {
		cfg := auth.DefaultConfig()
		cfg.BcryptCost = bcrypt.MinCost
		cfg.Revocations = b
		svc, err := auth.NewService(store, tokens, denylist, cfg)
		require.NoError(t, err)
		var mu sync.Mutex
		var heard []string
		svc.OnRevoke(func(jti string) { mu.Lock(); defer mu.Unlock(); heard = append(heard, jti) })
		_, err = svc.WatchRevocations(ctx, b)
		require.NoError(t, err)
		return svc, &heard
	}
	a, heardA := instance()
	other, heardB := instance()

	_, err := a.Register(ctx, auth.Registration{Email: "alice@example.com", Password: "password123", Username: "alice"})
	require.NoError(t, err)
	out, err := a.Login(ctx, "alice@example.com", "password123")
	require.NoError(t, err)
	kept, err := a.Login(ctx, "alice@example.com", "password123")
	require.NoError(t, err)
	for _, tok := range []string{out.Token, kept.Token} {
		_, _, err := other.Authenticate(ctx, tok)
		require.NoError(t, err, "cleared by the denylist on the other instance")
	}

	require.NoError(t, a.Logout(ctx, out.Claims))
	assert.Equal(t, []string{out.Claims.ID}, *heardA, "this instance's observers")
	assert.Equal(t, []string{out.Claims.ID}, *heardB, "the other instance's observers")

	denylist.SetUnavailable(true)
	defer denylist.SetUnavailable(false)
	_, _, err = other.Authenticate(ctx, out.Token)
	assert.Equal(t, core.Unavailable, core.KindOf(err), "the other instance no longer trusts the revoked token")
	_, _, err = other.Authenticate(ctx, kept.Token)
	assert.NoError(t, err, "the token still signed in stays trusted through the outage")
}

func TestRevocationsOfNoTokenAreIgnored(t *testing.T) {
	svc, err := auth.NewService(memory.NewUserStore(), &fakeTokens{issued: map[string]auth.Claims{}}, memory.NewDenylist(),
		auth.Config{BcryptCost: bcrypt.MinCost, TokenTTL: time.Hour})
	require.NoError(t, err)
	called := false
	svc.OnRevoke(func(string) { called = true })
	b := &bus{}
	_, err = svc.WatchRevocations(t.Context(), b)
	require.NoError(t, err)
	for _, payload := range []string{`{}`, `{"jti":""}`, `not json`, `{"jti":7}`} {
		require.NoError(t, b.Publish(t.Context(), auth.RevocationStream, []byte(payload)))
	}
	assert.False(t, called)
}
