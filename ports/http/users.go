package http

import (
	nethttp "net/http"

	"github.com/labstack/echo/v4"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/users"
)

func (s *Server) searchUsers(c echo.Context) error {
	found, err := s.users.Search(c.Request().Context(), c.QueryParam("search"))
	if err != nil {
		return err
	}
	online := s.online(c, found...)
	out := make([]users.Public, len(found))
	for i := range found {
		out[i] = found[i].PublicView(online[found[i].ID])
	}
	return c.JSON(nethttp.StatusOK, out)
}

func (s *Server) me(c echo.Context) error {
	u := currentUser(c)
	return c.JSON(nethttp.StatusOK, u.PrivateView(s.online(c, *u)[u.ID]))
}

func (s *Server) showUser(c echo.Context) error {
	id, ok := pathID(c, "id")
	if !ok {
		return core.E(core.NotFound, "")
	}
	u, err := s.users.Get(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, u.PublicView(s.online(c, u)[u.ID]))
}

func (s *Server) updateUser(c echo.Context) error {
	me := currentUser(c)
	id, ok := pathID(c, "id")
	if !ok || id != me.ID {
		return core.E(core.Forbidden, "")
	}
	b, err := readBody(c, "user")
	if err != nil {
		return err
	}
	var p users.Profile
	if v, isNull, ok := b.strOrNull("display_name", "Display name"); ok {
		if isNull || v == "" {
			p.ClearDisplayName = true
		} else {
			p.DisplayName = &v
		}
	}
	if v, isNull, ok := b.strOrNull("avatar_url", "Avatar url"); ok {
		if isNull || v == "" {
			p.ClearAvatarURL = true
		} else {
			p.AvatarURL = &v
		}
	}
	if err := b.err(); err != nil {
		return err
	}
	u, err := s.users.UpdateProfile(c.Request().Context(), me.ID, id, p)
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, u.PrivateView(s.online(c, u)[u.ID]))
}
