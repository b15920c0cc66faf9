package http

import (
	nethttp "net/http"

	"github.com/labstack/echo/v4"

	"github.com/chatterly/chatterly/core/auth"
)

func (s *Server) register(c echo.Context) error {
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
	b, err := readBody(c, "user")
	if err != nil {
		return err
	}
	email, _ := b.str("email", "Email")
	password, _ := b.str("password", "Password")
	if err := b.err(); err != nil {
		return err
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
