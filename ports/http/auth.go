package http

import (
	nethttp "net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chatterly/chatterly/core/auth"
	"github.com/chatterly/chatterly/core/ratelimit"
)

func (s *Server) register(c echo.Context) error {
	if err := s.limits.Check(c.Request().Context(), ratelimit.RegisterIP, c.RealIP()); err != nil {
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
	s.log.Info("user registered", "user_id", sess.User.ID)
	setBearer(c, sess.Token)
	return c.JSON(nethttp.StatusCreated, map[string]any{
		"message": "Registered successfully",
		"user":    sess.User.PrivateView(false),
	})
}

func (s *Server) login(c echo.Context) error {
	ctx := c.Request().Context()
	if err := s.limits.Check(ctx, ratelimit.LoginIP, c.RealIP()); err != nil {
		return err
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
	if key := strings.ToLower(strings.TrimSpace(email)); key != "" {
		if err := s.limits.Check(ctx, ratelimit.LoginEmail, key); err != nil {
			return err
		}
	}
	sess, err := s.auth.Login(c.Request().Context(), email, password)
	if err != nil {
		return err
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
