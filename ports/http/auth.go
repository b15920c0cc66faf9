package http

import (
	nethttp "net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/ratelimit"
)

func (s *Server) register(c echo.Context) error {
	rule := ratelimit.RegisterIP
	addr, shared := s.clientAddress(c)
	if shared {
		rule = ratelimit.RegisterShared
	}
	if err := s.limits.Check(c.Request().Context(), rule, addr); err != nil {
		return err
	}
	b, err := readBody(c, "user")
	if err != nil {
		return err
	}
	var r auth.Registration
	r.Email, _ = b.str("email", "Email")
	r.Password, _ = b.str("password", "Password")
	r.Username, _ = b.str("username", "Username")
	if dn, ok := b.str("display_name", "Display name"); ok {
		r.DisplayName = strPtr(dn)
	}
	if err := b.err(); err != nil {
		return err
	}
	sess, err := s.auth.Register(c.Request().Context(), r)
	if err != nil {
		return err
	}
	s.log.InfoContext(c.Request().Context(), "user registered", "user_id", sess.User.ID)
	setBearer(c, sess.Token)
	return c.JSON(nethttp.StatusCreated, map[string]any{
		"message": "Registered successfully",
		"user":    sess.User.PrivateView(false),
	})
}

// login counts failed attempts per client address and per email: each
// attempt takes from both limits before the password is checked, and a
// successful one gives its takes back. A shared address (see clientAddress)
// has no per-address limit, since its failures are everybody's: guessing
// from it is stopped per email and by the account lockout.
func (s *Server) login(c echo.Context) error {
	ctx := c.Request().Context()
	addr, shared := s.clientAddress(c)
	if !shared {
		if err := s.limits.Check(ctx, ratelimit.LoginIP, addr); err != nil {
			return err
		}
	}
	b, err := readBody(c, "user")
	if err != nil {
		return err
	}
	email, _ := b.str("email", "Email")
	password, _ := b.str("password", "Password")
	if err := b.err(); err != nil {
		return err
	}
	// Per email too, so that guessing one account's password from many
	// addresses is slowed as well.
	key := strings.ToLower(strings.TrimSpace(email))
	if key != "" {
		if err := s.limits.Check(ctx, ratelimit.LoginEmail, key); err != nil {
			return err
		}
	}
	sess, err := s.auth.Login(ctx, email, password)
	if err != nil {
		return err
	}
	if !shared {
		s.limits.Refund(ctx, ratelimit.LoginIP, addr)
	}
	if key != "" {
		s.limits.Refund(ctx, ratelimit.LoginEmail, key)
	}
	setBearer(c, sess.Token)
	return c.JSON(nethttp.StatusOK, map[string]any{"user": sess.User.PrivateView(s.online(c, sess.User)[sess.User.ID])})
}

func (s *Server) logout(c echo.Context) error {
	if err := s.auth.Logout(c.Request().Context(), c.Get(ctxClaims).(auth.Claims)); err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, map[string]string{"message": "Logged out successfully"})
}

func setBearer(c echo.Context, token string) {
	c.Response().Header().Set("Authorization", "Bearer "+token)
}
