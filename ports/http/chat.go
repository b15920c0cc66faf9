package http

import (
	nethttp "net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/chatterly/chatterly/core"
	"github.com/chatterly/chatterly/core/chat"
	"github.com/chatterly/chatterly/core/ratelimit"
)

func (s *Server) routeChat(v1 *echo.Group) {
	v1.GET("/conversations", s.listConversations)
	v1.POST("/conversations", s.createConversation)
	v1.GET("/conversations/:id", s.showConversation)
	v1.DELETE("/conversations/:id", s.deleteConversation)
	v1.POST("/conversations/:id/memberships", s.addMember)
	v1.DELETE("/conversations/:id/memberships/:user_id", s.removeMember)
	v1.POST("/conversations/:id/read", s.markRead)
	v1.GET("/conversations/:id/messages", s.history)
	v1.POST("/conversations/:id/messages", s.sendMessage)
	v1.PATCH("/conversations/:id/messages/:mid", s.editMessage)
	v1.PUT("/conversations/:id/messages/:mid", s.editMessage)
	v1.DELETE("/conversations/:id/messages/:mid", s.deleteMessage)
	v1.POST("/reactions", s.addReaction)
	v1.DELETE("/reactions/:id", s.removeReaction)
}

var errNotFound = core.E(core.NotFound, "Not found")

// limitUser counts one action of the signed-in user against its limit.
func (s *Server) limitUser(c echo.Context, name ratelimit.Name) error {
	return s.limits.Check(c.Request().Context(), name, strconv.FormatInt(currentUser(c).ID, 10))
}

// pathIDs parses the named id parameters; any that cannot name a record is NotFound.
func pathIDs(c echo.Context, names ...string) ([]int64, error) {
	out := make([]int64, len(names))
	for i, n := range names {
		id, ok := pathID(c, n)
		if !ok {
			return nil, errNotFound
		}
		out[i] = id
	}
	return out, nil
}

type dataBody struct {
	Data any `json:"data"`
}

type messageBody struct {
	Message string `json:"message"`
}

func (s *Server) listConversations(c echo.Context) error {
	views, err := s.chat.ListConversations(c.Request().Context(), currentUser(c).ID)
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, dataBody{views})
}

func (s *Server) createConversation(c echo.Context) error {
	if err := s.limitUser(c, ratelimit.Conversations); err != nil {
		return err
	}
	b, err := readBody(c, "conversation")
	if err != nil {
		return err
	}
	var in chat.ConversationInput
	in.Type, _ = b.str("conversation_type", "Conversation type")
	if v, ok := b.str("name", "Name"); ok {
		in.Name = &v
	}
	if v, ok := b.str("description", "Description"); ok {
		in.Description = &v
	}
	in.MemberIDs = b.ids("member_ids", "Member ids must be an array of user ids")
	if err := b.err(); err != nil {
		return err
	}
	v, created, err := s.chat.CreateConversation(c.Request().Context(), currentUser(c).ID, in)
	if err != nil {
		return err
	}
	status := nethttp.StatusOK
	if created {
		status = nethttp.StatusCreated
	}
	return c.JSON(status, dataBody{v})
}

func (s *Server) showConversation(c echo.Context) error {
	ids, err := pathIDs(c, "id")
	if err != nil {
		return err
	}
	v, err := s.chat.GetConversation(c.Request().Context(), currentUser(c).ID, ids[0])
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, dataBody{v})
}

func (s *Server) deleteConversation(c echo.Context) error {
	ids, err := pathIDs(c, "id")
	if err != nil {
		return err
	}
	if err := s.chat.DeleteConversation(c.Request().Context(), currentUser(c).ID, ids[0]); err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, messageBody{"Conversation deleted"})
}

func (s *Server) addMember(c echo.Context) error {
	ids, err := pathIDs(c, "id")
	if err != nil {
		return err
	}
	b, err := readBody(c, "membership")
	if err != nil {
		return err
	}
	userID, ok := b.id("user_id", "User must be a user id")
	if err := b.err(); err != nil {
		return err
	}
	if !ok {
		return core.InvalidDetails("User can't be blank")
	}
	if err := s.chat.AddMember(c.Request().Context(), currentUser(c).ID, ids[0], userID); err != nil {
		return err
	}
	return c.JSON(nethttp.StatusCreated, messageBody{"Member added"})
}

func (s *Server) removeMember(c echo.Context) error {
	ids, err := pathIDs(c, "id", "user_id")
	if err != nil {
		return err
	}
	if err := s.chat.RemoveMember(c.Request().Context(), currentUser(c).ID, ids[0], ids[1]); err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, messageBody{"Left conversation"})
}

// markRead sets the read marker: {"message_id": N}, or no body (or no
// message_id) for the newest message.
func (s *Server) markRead(c echo.Context) error {
	if err := s.limitUser(c, ratelimit.Reads); err != nil {
		return err
	}
	ids, err := pathIDs(c, "id")
	if err != nil {
		return err
	}
	b, err := readBody(c, "read")
	if err != nil {
		return err
	}
	messageID, given := b.id("message_id", "Message id must be a message id")
	if given && messageID <= 0 {
		b.problems = append(b.problems, "Message id must be a message id")
	}
	if err := b.err(); err != nil {
		return err
	}
	st, err := s.chat.MarkRead(c.Request().Context(), currentUser(c).ID, ids[0], messageID)
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, dataBody{st})
}

func (s *Server) history(c echo.Context) error {
	ids, err := pathIDs(c, "id")
	if err != nil {
		return err
	}
	cursor, err := messageParam(c, "cursor")
	if err != nil {
		return err
	}
	after, err := messageParam(c, "after")
	if err != nil {
		return err
	}
	if cursor != 0 && after != 0 {
		return badRequest("cursor and after cannot be combined")
	}
	limit, limitGiven := 0, false
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return badRequest("limit must be an integer")
		}
		// Clamp before narrowing so that a huge limit means "the most", not an overflow.
		limit, limitGiven = int(max(min(n, chat.MaxPageSize), 0)), true
	}
	var page chat.Page
	if after != 0 {
		page, err = s.chat.HistoryAfter(c.Request().Context(), currentUser(c).ID, ids[0], after, limit, limitGiven)
	} else {
		page, err = s.chat.History(c.Request().Context(), currentUser(c).ID, ids[0], cursor, limit, limitGiven)
	}
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, dataBody{page})
}

// messageParam parses the message id in query parameter name; 0 when it
// is absent.
func messageParam(c echo.Context, name string) (int64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest(name + " must be a message id")
	}
	return id, nil
}

func (s *Server) sendMessage(c echo.Context) error {
	if err := s.limitUser(c, ratelimit.Messages); err != nil {
		return err
	}
	ids, err := pathIDs(c, "id")
	if err != nil {
		return err
	}
	b, err := readBody(c, "message")
	if err != nil {
		return err
	}
	var in chat.MessageInput
	in.Content, _ = b.str("content", "Content")
	in.Type, _ = b.str("message_type", "Message type")
	if id, ok := b.id("parent_message_id", "Parent message must be a message id"); ok {
		in.ParentMessageID = &id
	}
	// An empty client_id is a value, which the service refuses; only null
	// or no key at all means no idempotency.
	if id, ok := b.str("client_id", "Client id"); ok {
		in.ClientID = &id
	}
	if err := b.err(); err != nil {
		return err
	}
	v, created, err := s.chat.SendMessage(c.Request().Context(), *currentUser(c), ids[0], in)
	if err != nil {
		return err
	}
	// A retry answers 200 with the message the first send created.
	status := nethttp.StatusOK
	if created {
		status = nethttp.StatusCreated
	}
	return c.JSON(status, dataBody{v})
}

func (s *Server) editMessage(c echo.Context) error {
	ids, err := pathIDs(c, "id", "mid")
	if err != nil {
		return err
	}
	b, err := readBody(c, "message")
	if err != nil {
		return err
	}
	content, _ := b.str("content", "Content")
	if err := b.err(); err != nil {
		return err
	}
	v, err := s.chat.EditMessage(c.Request().Context(), *currentUser(c), ids[0], ids[1], content)
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, v)
}

func (s *Server) deleteMessage(c echo.Context) error {
	ids, err := pathIDs(c, "id", "mid")
	if err != nil {
		return err
	}
	if err := s.chat.DeleteMessage(c.Request().Context(), currentUser(c).ID, ids[0], ids[1]); err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, messageBody{"Message deleted"})
}

func (s *Server) addReaction(c echo.Context) error {
	if err := s.limitUser(c, ratelimit.Reactions); err != nil {
		return err
	}
	b, err := readBody(c, "reaction")
	if err != nil {
		return err
	}
	messageID, ok := b.id("message_id", "Message must be a message id")
	emoji, _ := b.str("emoji", "Emoji")
	if err := b.err(); err != nil {
		return err
	}
	if !ok {
		return core.InvalidDetails("Message can't be blank")
	}
	v, err := s.chat.AddReaction(c.Request().Context(), currentUser(c).ID, messageID, emoji)
	if err != nil {
		return err
	}
	return c.JSON(nethttp.StatusCreated, v)
}

func (s *Server) removeReaction(c echo.Context) error {
	ids, err := pathIDs(c, "id")
	if err != nil {
		return err
	}
	if err := s.chat.RemoveReaction(c.Request().Context(), currentUser(c).ID, ids[0]); err != nil {
		return err
	}
	return c.JSON(nethttp.StatusOK, messageBody{"Reaction removed"})
}
