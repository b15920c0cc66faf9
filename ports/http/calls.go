package http

import (
	nethttp "net/http"
	"time"

	"github.com/labstack/echo/v4"
)

func (s *Server) routeCalls(v1 *echo.Group) {
	v1.POST("/conversations/:id/calls", s.initiateCall)
	v1.GET("/conversations/:id/calls/active", s.activeCall)
	v1.PUT("/conversations/:id/calls/:cid/accept", s.acceptCall)
	v1.PATCH("/conversations/:id/calls/:cid/accept", s.acceptCall)
	v1.PUT("/conversations/:id/calls/:cid/decline", s.declineCall)
	v1.PATCH("/conversations/:id/calls/:cid/decline", s.declineCall)
	v1.DELETE("/conversations/:id/calls/:cid", s.endCall)
	v1.GET("/ice_servers", s.iceServers)
}

func (s *Server) initiateCall(c echo.Context) error {
	ids, err := pathIDs(c, "id")
	if err != nil {
		return err
	}
	b, err := readBody(c, "call")
	if err != nil {
		return err
	}
	typ, _ := b.str("call_type", "Call type")
	if err := b.err(); err != nil {
		return err
	}
	v, err := s.calls.Initiate(c.Request().Context(), currentUser(c).ID, ids[0], typ)
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusCreated, dataBody{v})
}

func (s *Server) activeCall(c echo.Context) error {
	ids, err := pathIDs(c, "id")
	if err != nil {
		return err
	}
	v, err := s.calls.Active(c.Request().Context(), currentUser(c).ID, ids[0])
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, v)
}

func (s *Server) acceptCall(c echo.Context) error {
	ids, err := pathIDs(c, "id", "cid")
	if err != nil {
		return err
	}
	v, err := s.calls.Accept(c.Request().Context(), currentUser(c).ID, ids[0], ids[1])
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, v)
}

func (s *Server) declineCall(c echo.Context) error {
	ids, err := pathIDs(c, "id", "cid")
	if err != nil {
		return err
	}
	v, err := s.calls.Decline(c.Request().Context(), currentUser(c).ID, ids[0], ids[1])
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, v)
}

func (s *Server) endCall(c echo.Context) error {
	ids, err := pathIDs(c, "id", "cid")
	if err != nil {
		return err
	}
	if err := s.calls.End(c.Request().Context(), currentUser(c).ID, ids[0], ids[1]); err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, messageBody{"Call ended"})
}

func (s *Server) iceServers(c echo.Context) error {
	return c.JSON(nethttp.StatusOK, s.ice.For(currentUser(c).ID, time.Now()))
}
