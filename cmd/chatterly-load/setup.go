package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// parallel runs f(0..n-1) with at most conc at a time and returns the first error.
func parallel(ctx context.Context, n, conc int, f func(i int) error) error {
	conc = max(1, min(conc, n))
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// registerUsers registers n fresh users over REST.
func registerUsers(ctx context.Context, api *API, cm common, n int) ([]User, error) {
	run := runID()
	users := make([]User, n)
	start := time.Now()
	err := parallel(ctx, n, cm.conc, func(i int) error {
		u, err := api.Register(ctx, username(run, i), cm.password)
		users[i] = u
		return err
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "setup: registered %d users in %s\n", n, time.Since(start).Round(time.Millisecond))
	return users, nil
}

// makeGroups splits users into groups of size (the last may be smaller, but
// a lone user gets a group of one) and returns each user's conversation id
// and the conversations' member indexes.
func makeGroups(ctx context.Context, api *API, cm common, users []User, size int) (convOf []int64, groups [][]int, convs []int64, err error) {
	size = max(1, size)
	for i := 0; i < len(users); i += size {
		g := make([]int, 0, size)
		for j := i; j < min(i+size, len(users)); j++ {
			g = append(g, j)
		}
		groups = append(groups, g)
	}
	convs = make([]int64, len(groups))
	convOf = make([]int64, len(users))
	start := time.Now()
	err = parallel(ctx, len(groups), cm.conc, func(k int) error {
		g := groups[k]
		ids := make([]int64, 0, len(g)-1)
		for _, j := range g[1:] {
			ids = append(ids, users[j].ID)
		}
		id, err := api.CreateGroup(ctx, users[g[0]], fmt.Sprintf("load %d", k), ids)
		if err != nil {
			return err
		}
		convs[k] = id
		for _, j := range g {
			convOf[j] = id
		}
		return nil
	})
	if err == nil {
		fmt.Fprintf(os.Stderr, "setup: created %d conversations in %s\n", len(groups), time.Since(start).Round(time.Millisecond))
	}
	return convOf, groups, convs, err
}

// Dialed is the outcome of connectAll.
type Dialed struct {
	Cables      []*Cable
	DialErrs    int
	FirstErr    error
	Unconfirmed int
	Rejected    int
	// ToConfirm is, per connected client, the time from its dial start to
	// its last confirm.
	ToConfirm []time.Duration
	// All is the time from the first dial to the last confirm.
	All time.Duration
}

// connectAll opens n connections; connection i belongs to users[i%len(users)]
// and subscribes to the four channels with its conversation. It waits for
// every confirmation (or timeout).
func connectAll(ctx context.Context, cm common, users []User, convOf []int64, n int, on OnMessage) *Dialed {
	d := &Dialed{Cables: make([]*Cable, n), ToConfirm: make([]time.Duration, n)}
	var mu sync.Mutex
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(1, cm.conc))
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			u := users[i%len(users)]
			c, err := DialCable(ctx, cm.url, u, i, fourIdentifiers(convOf[i%len(users)]), on)
			<-sem
			if err != nil {
				mu.Lock()
				d.DialErrs++
				if d.FirstErr == nil {
					d.FirstErr = err
				}
				mu.Unlock()
				return
			}
			d.Cables[i] = c
			timer := time.NewTimer(cm.confirmMax)
			defer timer.Stop()
			select {
			case <-c.Confirmed():
				d.ToConfirm[i] = time.Since(t0)
			case <-c.Done():
			case <-timer.C:
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	d.All = time.Since(start)
	conf := d.ToConfirm[:0]
	for i, c := range d.Cables {
		if c == nil {
			continue
		}
		d.Rejected += c.Rejected()
		if d.ToConfirm[i] == 0 {
			d.Unconfirmed++
		} else {
			conf = append(conf, d.ToConfirm[i])
		}
	}
	d.ToConfirm = conf
	fmt.Fprintf(os.Stderr, "setup: %d connections, %d confirmed, %d dial errors, %d unconfirmed, %d rejected in %s\n",
		n, len(conf), d.DialErrs, d.Unconfirmed, d.Rejected, d.All.Round(time.Millisecond))
	if d.FirstErr != nil {
		fmt.Fprintf(os.Stderr, "setup: first dial error: %v\n", d.FirstErr)
	}
	return d
}

// closeAll closes every connection and waits for their readers.
func closeAll(cs []*Cable) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
	for _, c := range cs {
		if c != nil {
			<-c.Done()
		}
	}
}

func live(cs []*Cable) int {
	n := 0
	for _, c := range cs {
		if c != nil {
			select {
			case <-c.Done():
			default:
				n++
			}
		}
	}
	return n
}
