package main

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The open loop keeps the generator's work per request to two wake-ups: the scheduler thread
// writes each request itself (no goroutine handed a request, no thread woken for it), and
// every connection has a reader goroutine parked in the netpoller for its answers.

// openSlot is one scheduled request of one open-loop run.
type openSlot struct {
	run *openRun
	i   int
	due time.Time
	// retried: it already went out once on a connection that turned out to be closed.
	retried bool
}

type openRun struct {
	t       *target
	lat     []int64
	pending sync.WaitGroup
}

// openConn is a keep-alive connection of the open loop with its reader goroutine; slot is the
// request in flight on it, set before the write that its answer follows.
type openConn struct {
	*conn
	slot atomic.Pointer[openSlot]
	// dead: the reader has exited; whoever swaps a slot out of a dead connection settles it.
	dead atomic.Bool
	// req: this connection's copy of the chat request when each prompt is unique.
	req []byte
}

// send puts the slot's request on an idle connection (or a new one). It reports nothing: a
// failure lands in the slot as an error.
func (r *openRun) send(s *openSlot) {
	t := r.t
	t.mu.Lock()
	var c *openConn
	// A retry always gets a new connection: the idle ones may be as stale as the last.
	for n := len(t.openIdle); n > 0 && c == nil && !s.retried; n-- {
		// Connections the server closed while idle are dropped here.
		if c = t.openIdle[n-1]; c.dead.Load() {
			c = nil
		}
		t.openIdle = t.openIdle[:n-1]
	}
	t.mu.Unlock()
	if c == nil {
		// Dial off the schedule's thread: a connect to a saturated listener can take a SYN
		// retry (1 s), which must land on this request, not delay every later one.
		go func() {
			nc, err := t.dial()
			if err != nil {
				r.finish(s, -1)
				return
			}
			c := &openConn{conn: nc}
			go c.read(t)
			c.write(s)
		}()
		return
	}
	c.write(s)
}

// write sends the slot's request on c; the reader settles the slot, even when this fails.
func (c *openConn) write(s *openSlot) {
	t := s.run.t
	c.slot.Store(s)
	if c.dead.Load() {
		// The reader exited after the pop: it may not have seen the slot, so settle it here.
		if s := c.slot.Swap(nil); s != nil {
			s.run.retry(s)
		}
		return
	}
	if err := c.c.SetDeadline(time.Now().Add(chatTimeout)); err == nil {
		c.req = t.chatRequest(c.req)
		_, err = c.c.Write(c.req)
		if err == nil {
			return
		}
	}
	// The reader sees the broken connection and settles the slot.
	c.c.Close()
}

// retry sends s again on another connection, once; a second failure is the target's error.
func (r *openRun) retry(s *openSlot) {
	if s.retried {
		r.finish(s, -1)
		return
	}
	s.retried = true
	r.send(s)
}

func (r *openRun) finish(s *openSlot, latency int64) {
	r.lat[s.i] = latency
	r.pending.Done()
}

// read answers every request written on c, until c fails or the server closes it.
func (c *openConn) read(t *target) {
	defer c.c.Close()
	for {
		before := c.tr.bytes
		status, keep, err := readResponse(c.conn, nil)
		if err != nil {
			c.dead.Store(true)
			if s := c.slot.Swap(nil); s != nil {
				// Nothing of the answer came: a keep-alive connection the server closed while
				// idle; retry on a new one, as an HTTP client does. Otherwise the target failed.
				if c.tr.bytes == before {
					s.run.retry(s)
				} else {
					s.run.finish(s, -1)
				}
			}
			return
		}
		s := c.slot.Swap(nil)
		if s == nil {
			c.dead.Store(true) // an answer to nothing: the connection is out of step
			return
		}
		latency := int64(-1)
		if status == 200 {
			latency = micros(time.Since(s.due))
		}
		if !keep {
			c.dead.Store(true)
			s.run.finish(s, latency)
			return
		}
		t.mu.Lock()
		t.openIdle = append(t.openIdle, c)
		t.mu.Unlock()
		s.run.finish(s, latency)
	}
}

type openResult struct {
	Latencies []int64 `json:"latencies_us"`
	Errors    int     `json:"errors"`
	SentRate  float64 `json:"sent_rate"`
	P50       int64   `json:"p50_us"`
	P90       int64   `json:"p90_us"`
	P99       int64   `json:"p99_us"`
	Max       int64   `json:"max_us"`
	LateP50   int64   `json:"late_p50_us"`
	LateP99   int64   `json:"late_p99_us"`
}

// open is load.ts's openLoop with wrk2's correction for coordinated omission: every request
// has an intended send time on a fixed schedule, and its latency runs from that time, so time
// spent waiting behind a slow target (or a late generator) counts against the figure instead
// of silently lowering the arrival rate. late_* say how late the generator itself was.
func (g *generator) open(t *target, rate, secs float64) openResult {
	return g.interleaved([]*target{t}, rate, secs)[0]
}

// interleaved is one open loop over several targets at `rate` req/s in all: request i goes to
// targets[i % n]. Neighbouring requests of different targets see the same moment of the
// machine, so the difference of their medians is free of the drift that separates two runs
// (this VM's p50 moves by tenths of a millisecond from one second to the next).
func (g *generator) interleaved(ts []*target, rate, secs float64) []openResult {
	n := len(ts)
	total := max(n, int(math.Round(rate*secs)))
	total -= total % n
	interval := time.Duration(float64(time.Second) / rate)
	runs := make([]*openRun, n)
	for k, t := range ts {
		runs[k] = &openRun{t: t, lat: make([]int64, total/n)}
		runs[k].pending.Add(total / n)
	}
	late := make([]int64, total)
	slots := make([]openSlot, total)
	runtime.LockOSThread()
	start := time.Now()
	last := start
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		sleepUntil(due)
		last = time.Now()
		late[i] = micros(last.Sub(due))
		run := runs[i%n]
		slots[i] = openSlot{run: run, i: i / n, due: due}
		run.send(&slots[i])
	}
	runtime.UnlockOSThread()
	slices.Sort(late)
	span := last.Sub(start).Seconds()
	results := make([]openResult, n)
	for k, run := range runs {
		run.pending.Wait()
		ok := make([]int64, 0, len(run.lat))
		errors := 0
		for _, v := range run.lat {
			if v < 0 {
				errors++
			} else {
				ok = append(ok, v)
			}
		}
		slices.Sort(ok)
		sent := float64(total / n)
		if span > 0 {
			sent = float64(total-1) / span / float64(n)
		}
		r := openResult{Latencies: ok, Errors: errors, SentRate: sent,
			P50: percentile(ok, 50), P90: percentile(ok, 90), P99: percentile(ok, 99),
			LateP50: percentile(late, 50), LateP99: percentile(late, 99)}
		if len(ok) > 0 {
			r.Max = ok[len(ok)-1]
		}
		results[k] = r
	}
	return results
}
