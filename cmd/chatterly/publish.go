package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatterly/chatterly/core/chat"
)

// countingBroker counts the publishes that fail, for /metrics. An event
// whose publish fails is lost (clients catch up over REST), so a rising
// count means users see a stale chat until they reload.
type countingBroker struct {
	Broker
	failures prometheus.Counter
	log      *slog.Logger

	// failing tells the first failure of a run from the next ones: the
	// callers log each failure already, so this logs only the turns
	// (failing, then recovered), which is what an operator looks for.
	mu       sync.Mutex
	failing  bool
	runFails int
}

var _ prometheus.Collector = (*countingBroker)(nil)

func countPublishFailures(b Broker, log *slog.Logger) *countingBroker {
	return &countingBroker{
		Broker: b,
		log:    log,
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chatterly_publish_failures_total",
			Help: "Events that could not be published to the broker, and so reached no WebSocket client.",
		}),
	}
}

func (c *countingBroker) Publish(ctx context.Context, stream string, payload []byte) error {
	return c.count(stream, c.Broker.Publish(ctx, stream, payload))
}

func (c *countingBroker) PublishTransient(ctx context.Context, stream string, payload []byte) error {
	return c.count(stream, c.Broker.PublishTransient(ctx, stream, payload))
}

func (c *countingBroker) PublishEvicting(ctx context.Context, stream string, payload []byte, ev chat.Eviction) error {
	return c.count(stream, c.Broker.PublishEvicting(ctx, stream, payload, ev))
}

// count notes the outcome of one publish and returns its error.
func (c *countingBroker) count(stream string, err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil:
		c.failures.Inc()
		c.runFails++
		if !c.failing {
			c.failing = true
			c.log.Error("publishing events is failing: WebSocket clients miss events until it recovers", "stream", stream, "err", err)
		}
	case c.failing:
		c.log.Warn("publishing events recovered", "failed", c.runFails)
		c.failing, c.runFails = false, 0
	}
	return err
}

func (c *countingBroker) Describe(ch chan<- *prometheus.Desc) { c.failures.Describe(ch) }

func (c *countingBroker) Collect(ch chan<- prometheus.Metric) { c.failures.Collect(ch) }
