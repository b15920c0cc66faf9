package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

func runSoak(ctx context.Context, args []string) error {
	var cm common
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	cm.register(fs)
	n := fs.Int("n", 500, "connections")
	nusers := fs.Int("users", 200, "distinct users (connections are spread over them)")
	group := fs.Int("group", 10, "members per group conversation")
	dur := fs.Duration("d", 5*time.Minute, "duration of the load")
	rate := fs.Float64("rate", 20, "messages/s POSTed in total")
	k := fs.Int("k", 8, "concurrent senders")
	typing := fs.Float64("typing", 5, "typing + stop_typing actions/s in total")
	sample := fs.Duration("sample", 0, "sampling interval of /metrics (default d/10)")
	settle := fs.Duration("settle", 5*time.Second, "wait after the clients leave before the last sample")
	cm.parse(fs, args)
	if *sample <= 0 {
		*sample = max(time.Second, *dur/10)
	}
	api := newAPI(cm.url, max(cm.conc, *k))

	users, err := registerUsers(ctx, api, cm, min(*n, max(1, *nusers)))
	if err != nil {
		return err
	}
	convOf, groups, convs, err := makeGroups(ctx, api, cm, users, *group)
	if err != nil {
		return err
	}
	baseline, err := api.Metrics(ctx)
	if err != nil {
		return err
	}
	del := &deliveries{}
	d := connectAll(ctx, cm, users, convOf, *n, del.on)
	start, err := api.Metrics(ctx)
	if err != nil {
		return err
	}

	r := newReport("soak")
	r.Row("sample", "elapsed", "rss", "heap_inuse", "goroutines", "cable_conns", "accepted", "delivered")
	row := func(name string, el time.Duration, m Metrics, acc, got int64) {
		r.Row(name, el.Round(time.Second), mib(m.RSS), mib(m.HeapInuse), int(m.Goroutines), int(m.CableConns), acc, got)
		r.Result.Samples = append(r.Result.Samples, Sample{Name: name, ElapsedS: el.Seconds(), RSS: m.RSS, HeapInuse: m.HeapInuse,
			Goroutines: m.Goroutines, CableConns: m.CableConns, Accepted: acc, Delivered: got})
	}
	row("baseline", 0, baseline, 0, 0)
	row("start", 0, start, 0, 0)

	s := sendLoad{weight: weights(d.Cables, convOf, len(users), convs)}
	stop := make(chan struct{})
	began := time.Now()
	status := s.status(del)
	stopProgress := progress(cm.progress, "soak", func() string {
		return fmt.Sprintf("%d/%d connections, %s", live(d.Cables), *n, status())
	})
	defer stopProgress()
	sent := make(chan struct{})
	go func() {
		s.run(ctx, api, users, groups, convs, *k, *rate, stop)
		close(sent)
	}()
	// Actions from this goroutine: presence pings every 30 s per connection
	// (spread), typing at the requested rate.
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		typingPerTick := *typing / 10
		pingPerTick := float64(*n) / 300 // each connection every 30 s
		var tacc, pacc float64
		next := 0
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			tacc += typingPerTick
			for ; tacc >= 1; tacc-- {
				i := rand.IntN(*n)
				if c := d.Cables[i]; c != nil {
					id := conversationIdentifier(convOf[i%len(users)])
					_ = c.Perform(id, "typing")
					_ = c.Perform(id, "stop_typing")
				}
			}
			pacc += pingPerTick
			for ; pacc >= 1; pacc-- {
				if c := d.Cables[next%*n]; c != nil {
					_ = c.Perform(presenceIdentifier, "ping")
				}
				next++
			}
		}
	}()
	for el := *sample; el <= *dur; el += *sample {
		select {
		case <-time.After(time.Until(began.Add(el))):
		case <-ctx.Done():
			close(stop)
			return ctx.Err()
		}
		m, err := api.Metrics(ctx)
		if err != nil {
			return err
		}
		row("t+"+el.Round(time.Second).String(), el, m, s.accepted.Load(), del.count.Load())
	}
	close(stop)
	<-sent
	elapsed := time.Since(began)
	stopProgress()
	time.Sleep(time.Second)
	end, err := api.Metrics(ctx)
	if err != nil {
		return err
	}
	row("end", time.Since(began), end, s.accepted.Load(), del.count.Load())
	conns := live(d.Cables)
	closeAll(d.Cables)
	time.Sleep(*settle)
	after, err := api.Metrics(ctx)
	if err != nil {
		return err
	}
	row("after leave", time.Since(began), after, s.accepted.Load(), del.count.Load())
	lat := summarize(del.lat.All())
	r.Row("")
	latencyHeader(&r.Table)
	r.Latency("POST", "post", summarize(s.post.All()))
	r.Latency("POST->receipt", "post_to_receipt", lat)
	expected, got := s.expected.Load(), del.count.Load()
	r.Row("drift", "rss end-start", mib(end.RSS-start.RSS), "heap end-start", mib(end.HeapInuse-start.HeapInuse),
		"goroutines end-start", int(end.Goroutines-start.Goroutines))
	r.Row("residue", "rss after-baseline", mib(after.RSS-baseline.RSS), "heap after-baseline", mib(after.HeapInuse-baseline.HeapInuse),
		"goroutines after-baseline", int(after.Goroutines-baseline.Goroutines))
	r.Result.ElapsedS = elapsed.Seconds()
	r.Result.Counts = map[string]int64{"connections": int64(*n), "live": int64(conns), "accepted": s.accepted.Load(),
		"refused": s.refused.Load(), "errors": s.errs.Load(), "deliveries_expected": expected, "deliveries_received": got,
		"lost": max(0, expected-got)}
	r.Result.Rates = map[string]float64{"accepted": float64(s.accepted.Load()) / elapsed.Seconds(), "delivered": float64(got) / elapsed.Seconds()}
	r.Result.Server = map[string]float64{
		"rss_drift_bytes": end.RSS - start.RSS, "heap_inuse_drift_bytes": end.HeapInuse - start.HeapInuse,
		"goroutine_drift":   end.Goroutines - start.Goroutines,
		"rss_residue_bytes": after.RSS - baseline.RSS, "heap_inuse_residue_bytes": after.HeapInuse - baseline.HeapInuse,
		"goroutine_residue": after.Goroutines - baseline.Goroutines,
	}
	lost := strconv.FormatInt(max(0, expected-got), 10)
	report(cm, r, fmt.Sprintf("soak: %d/%d connections, %s, %d accepted (%d refused, %d errors), %d deliveries, %s lost; heap drift %s, goroutine drift %+d; after leave goroutines %+d, heap %s vs baseline",
		conns, *n, dur.String(), s.accepted.Load(), s.refused.Load(), s.errs.Load(), got, lost,
		mib(end.HeapInuse-start.HeapInuse), int(end.Goroutines-start.Goroutines),
		int(after.Goroutines-baseline.Goroutines), mib(after.HeapInuse-baseline.HeapInuse)))
	if s.accepted.Load() == 0 {
		return fmt.Errorf("no message accepted")
	}
	return nil
}
