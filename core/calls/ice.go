package calls

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // coturn's TURN REST API scheme is defined on HMAC-SHA1
	"encoding/base64"
	"strconv"
	"time"
)

// ICE configures the ICE servers handed to clients. TURN credentials follow
// coturn's TURN REST API scheme (use-auth-secret): the username is
// "<expiry unix>:<user id>" and the credential base64(HMAC-SHA1(secret, username)),
// so the TURN server checks them without a database.
type ICE struct {
	STUN   []string
	TURN   []string
	Secret []byte
	TTL    time.Duration
}

// ICEServer is one RTCIceServer entry.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ICEServers is the answer of GET /api/v1/ice_servers.
type ICEServers struct {
	Servers []ICEServer `json:"ice_servers"`
	TTL     int64       `json:"ttl"`
}

// For returns the servers for a user at now.
func (c ICE) For(userID int64, now time.Time) ICEServers {
	ttl := c.TTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	out := ICEServers{Servers: []ICEServer{}, TTL: int64(ttl / time.Second)}
	if len(c.STUN) > 0 {
		out.Servers = append(out.Servers, ICEServer{URLs: c.STUN})
	}
	if len(c.TURN) > 0 && len(c.Secret) > 0 {
		username := strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + strconv.FormatInt(userID, 10)
		mac := hmac.New(sha1.New, c.Secret)
		mac.Write([]byte(username))
		out.Servers = append(out.Servers, ICEServer{URLs: c.TURN, Username: username, Credential: base64.StdEncoding.EncodeToString(mac.Sum(nil))})
	}
	return out
}
