// Package redis implements the ports that need state shared by every
// instance (the token denylist, presence) on Redis through rueidis.
//
// Every key carries the Client's prefix, so several deployments, or the
// tests of several packages, can share one Redis without seeing each
// other's keys.
package redis

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/chatterly/chatterly/core"
)

// Timeouts used when the URL does not set dial_timeout or write_timeout.
// They are short so that a dead Redis fails a request in seconds instead of
// holding it until the client gives up.
const (
	DefaultDialTimeout  = 2 * time.Second
	DefaultWriteTimeout = 2 * time.Second
)

// maxRetries bounds how often rueidis retries a read-only command after a
// network error. Without a bound it retries until the context ends, and a
// request without a deadline would hang while Redis is down. A broken
// connection is worth a retry on a fresh one; a timeout is not, since
// Redis, or the way to it, is not answering and each retry would wait as long.
const maxRetries = 2

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// Client is a connection pool to one Redis with a key prefix.
type Client struct {
	rdb    rueidis.Client
	prefix string
	// timeout bounds every call. rueidis notices an unresponsive connection
	// only at its next periodic PING, which can take twice the write
	// timeout, while requests wait on the answer and should fail sooner.
	timeout time.Duration
	errs    *prometheus.CounterVec // by op
}

// The operations that chatterly_redis_errors_total counts failures of.
const (
	opPing      = "ping"
	opPublish   = "publish"
	opSubscribe = "subscribe" // subscribing, unsubscribing and connecting for pub/sub
	opDenylist  = "denylist"
	opPresence  = "presence"
	opRateLimit = "ratelimit"
	opSession   = "session"
)

// errTimedOut is the cause of a call's context when the Client's own
// timeout ended it, which tells Redis being slow from the caller giving up.
var errTimedOut = errors.New("redis: call timed out")

// Open connects to the Redis at redisURL (redis://[user:password@]host:port/db,
// or rediss:// for TLS) and checks that it answers. keyPrefix, for example
// "chatterly:", is put in front of every key. Unavailable when Redis cannot
// be reached; Internal (with no URL in the message, since it may hold a
// password) when the URL is malformed.
func Open(ctx context.Context, redisURL, keyPrefix string) (*Client, error) {
	opt, err := rueidis.ParseURL(redisURL)
	if err != nil {
		// url.Error repeats the whole URL, password included; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, core.Wrap(core.Internal, "redis: invalid URL", err)
	}
	if opt.Dialer.Timeout == 0 {
		opt.Dialer.Timeout = DefaultDialTimeout
	}
	if opt.ConnWriteTimeout == 0 {
		opt.ConnWriteTimeout = DefaultWriteTimeout
	}
	opt.RetryDelay = func(attempts int, _ rueidis.Completed, err error) time.Duration {
		if attempts > maxRetries || isTimeout(err) {
			return -1
		}
		return time.Duration(attempts) * 50 * time.Millisecond
	}
	// Client-side caching is not used, and turning it off keeps the client
	// working with Redis-compatible servers that lack CLIENT TRACKING.
	opt.DisableCache = true
	rdb, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, translate(err)
	}
	c := &Client{rdb: rdb, prefix: keyPrefix, timeout: opt.ConnWriteTimeout, errs: newErrorCounter()}
	if err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes every connection. Calls made after Close fail with Unavailable.
func (c *Client) Close() { c.rdb.Close() }

// Ping checks that Redis answers; readiness probes use it. Unavailable when
// it does not.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := c.bound(ctx)
	defer cancel()
	return c.fail(ctx, opPing, c.rdb.Do(ctx, c.rdb.B().Ping().Build()).Error())
}

// Metrics returns the collector of the Client's metrics, for /metrics:
// chatterly_redis_errors_total, the commands that failed by operation.
func (c *Client) Metrics() prometheus.Collector { return c.errs }

func newErrorCounter() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chatterly_redis_errors_total",
		Help: "Redis commands that failed (Redis unreachable, too slow, or an error reply), by operation.",
	}, []string{"op"})
	// Every series exists from the start, so that rate() sees the first failure.
	for _, op := range []string{opPing, opPublish, opSubscribe, opDenylist, opPresence, opRateLimit, opSession} {
		v.WithLabelValues(op)
	}
	return v
}

// bound returns ctx with the Client's timeout unless ctx ends sooner.
func (c *Client) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, c.timeout, errTimedOut)
}

// fail is translate for the error of a command of op run with ctx (from
// bound), which it also counts as failed. A nil reply is not counted, since
// callers that expect one handle it first, nor is an error after the
// caller's own context ended: the caller gave up, which says nothing of Redis.
func (c *Client) fail(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, context.DeadlineExceeded) && time.Until(dl) < 10*time.Millisecond {
		// rueidis gives the connection ctx's deadline and may report it a
		// moment before ctx's own timer ends ctx and records the cause.
		<-ctx.Done()
	}
	gaveUp := ctx.Err() != nil && !errors.Is(context.Cause(ctx), errTimedOut)
	if !rueidis.IsRedisNil(err) && !gaveUp {
		c.errs.WithLabelValues(op).Inc()
	}
	return translate(err)
}

func (c *Client) key(parts ...string) string {
	return c.prefix + strings.Join(parts, "")
}

// Error replies that mean Redis is up but cannot serve now (loading its
// data, running a long script, failing over, out of memory), so the caller
// should retry later like when it is down.
var transientReplies = map[string]bool{
	"LOADING": true, "BUSY": true, "MASTERDOWN": true, "READONLY": true,
	"TRYAGAIN": true, "CLUSTERDOWN": true, "OOM": true, "NOREPLICAS": true,
}

// translate classifies an error from rueidis. An error reply is Redis
// answering, so it is Internal (a bug) unless it is transient; a reply of an
// unexpected type is Internal too. Anything else failed on the way to or from
// Redis (refused or reset connection, timeout, closed client, canceled
// context): Unavailable. rueidis.Nil must be handled by the caller where it
// means something; here it is an unexpected reply.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if rueidis.IsRedisNil(err) {
		return core.Wrap(core.Internal, "unexpected redis nil reply", err)
	}
	if re, ok := rueidis.IsRedisErr(err); ok {
		code, _, _ := strings.Cut(re.Error(), " ")
		if transientReplies[code] {
			return core.Wrap(core.Unavailable, "redis unavailable", err)
		}
		return core.Wrap(core.Internal, "redis error reply", err)
	}
	if rueidis.IsParseErr(err) {
		return core.Wrap(core.Internal, "unexpected redis reply", err)
	}
	return core.Wrap(core.Unavailable, "redis unavailable", err)
}
