// Command loadgen is the benchmark's load generator: what bench/load.ts does (the same requests,
// the same checks and error counting) at a fraction of its CPU, so that a proxy, not the
// generator, is what a run measures.
//
//	loadgen [--bearer=TOKEN] [--prompt-bytes=N] [--unique-prompts | --new-turns] [--user-agent=UA]
//
// It reads one JSON command per stdin line and answers each with one JSON line on stdout;
// connection pools live per target (url + socket) for the life of the process, so rounds reuse
// warm keep-alive connections as an HTTP client would. Commands (times in the answers are µs):
//
//	{"op":"open","url":U,"socket":S,"rate":R,"seconds":T}     open loop, R req/s for T s
//	{"op":"interleaved","targets":[{"url":U,"socket":S},...],"rate":R,"seconds":T}
//	                                                          one open loop of R req/s in all,
//	                                                          request i to target i mod n;
//	                                                          answers {"results":[open...]}
//	{"op":"closed","url":U,"concurrency":N,"seconds":T}       closed loop, N in flight
//	{"op":"streams","url":U,"seconds":T}                      streams one at a time
//	{"op":"many","url":U,"count":N,"model":M,"gap_ms":G,"ramp_seconds":R}
//	{"op":"warmup","url":U,"concurrency":N,"seconds":T}       closed loop, then streams
//
// "socket" (a Unix socket path) is optional everywhere. An answer with "error" set means the
// command itself could not run.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	chatTimeout   = 30 * time.Second
	streamTimeout = 120 * time.Second
	prose         = "The quarterly report covers revenue, hiring and the product roadmap for next year. "
)

// payloads are load.ts's request bodies, byte for byte.
type payloads struct {
	bearer, userAgent string
	messages          json.RawMessage
	chat, stream      []byte
	// unique: each chat request carries its own number (uniqueMark's digits rewritten in
	// place), so nothing keyed on the prompt sees it twice.
	unique bool
}

// newTurn is the user turn that follows the history with --new-turns: a chat client resends
// the conversation so far and adds one short question of its own.
const newTurn = uniqueMark + "What changed since the last report?"

// uniqueMark opens the prompt when every request's is to differ: ten digits, same length always.
const uniqueMark = "[0000000000] "

func newPayloads(bearer, userAgent string, promptBytes int, unique, newTurns bool) *payloads {
	content := "Say hello."
	if promptBytes > 0 {
		content = strings.Repeat(prose, (promptBytes+len(prose)-1)/len(prose))[:promptBytes]
	}
	if unique && !newTurns {
		// Padded prompts keep their length (the number replaces their first bytes).
		n := len(uniqueMark) + len(content)
		if promptBytes > 0 {
			n = max(len(content), len(uniqueMark))
		}
		content = (uniqueMark + content)[:n]
	}
	type message struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	list := []message{
		{"system", "You are a helpful assistant."},
		{"user", content},
	}
	if newTurns {
		list = append(list, message{"assistant", "Noted."}, message{"user", newTurn})
	}
	messages, _ := marshal(list)
	p := &payloads{bearer: bearer, userAgent: userAgent, messages: messages,
		unique: unique || newTurns}
	p.chat = p.body("up/gpt-4o-mini", false)
	p.stream = p.body("up/gpt-4o-mini", true)
	return p
}

func (p *payloads) body(model string, stream bool) []byte {
	m, _ := marshal(model)
	b := `{"model":` + string(m) + `,"messages":` + string(p.messages) + `,"max_tokens":32`
	if stream {
		b += `,"stream":true`
	}
	return []byte(b + "}")
}

// marshal is JSON.stringify of what it is given: no HTML escaping.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), err
}

type command struct {
	Op          string  `json:"op"`
	URL         string  `json:"url"`
	Socket      string  `json:"socket"`
	Rate        float64 `json:"rate"`
	Seconds     float64 `json:"seconds"`
	Concurrency int     `json:"concurrency"`
	Count       int     `json:"count"`
	Model       string  `json:"model"`
	GapMs       float64 `json:"gap_ms"`
	RampSeconds float64 `json:"ramp_seconds"`
	Targets     []struct {
		URL    string `json:"url"`
		Socket string `json:"socket"`
	} `json:"targets"`
}

type generator struct {
	p       *payloads
	targets map[string]*target
}

func (g *generator) target(c *command) (*target, error) {
	key := c.URL + "\x00" + c.Socket
	if t, ok := g.targets[key]; ok {
		return t, nil
	}
	t, err := newTarget(c.URL, c.Socket, g.p)
	if err == nil {
		g.targets[key] = t
	}
	return t, err
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func micros(d time.Duration) int64 { return d.Microseconds() }

// percentile is load.ts's nearest-rank percentile of an ascending slice; 0 when empty.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(len(sorted), max(1, rank))-1]
}

// wakeLag is how late nanosleep has been waking up (a moving average, ns); sleepUntil asks to be
// woken that much early and spins the rest, so the schedule is kept to a few µs instead of being
// late by the VM's timer latency (~50-100 µs here) on every request.
var wakeLag time.Duration

const maxSpin = 100 * time.Microsecond

// sleepUntil waits for t on a thread of its own (the caller locks it): nanosleep with a 1 ns
// timer slack, where the Go timer wheel rounds to the millisecond.
func sleepUntil(t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	if early := d - wakeLag; early > 0 {
		ts := syscall.NsecToTimespec(int64(early))
		for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
		}
		lag := time.Since(t.Add(-wakeLag))
		wakeLag = min(maxSpin, max(0, wakeLag+(lag-wakeLag)/8))
	}
	for time.Now().Before(t) {
	}
}

type closedResult struct {
	Completed int     `json:"completed"`
	Errors    int     `json:"errors"`
	Seconds   float64 `json:"seconds"`
	RPS       float64 `json:"rps"`
}

// closed is load.ts's closedLoop: `concurrency` workers, each sending the next request as soon
// as its last one finished.
func (g *generator) closed(t *target, concurrency int, secs float64) closedResult {
	var completed, errors atomic.Int64
	start := time.Now()
	end := start.Add(seconds(secs))
	var wg sync.WaitGroup
	for range max(1, concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ok, bad int64
			var req []byte
			for time.Now().Before(end) {
				req = t.chatRequest(req)
				status, err := t.roundTrip(req, chatTimeout, nil)
				if err == nil && status == 200 {
					ok++
				} else {
					bad++
				}
			}
			completed.Add(ok)
			errors.Add(bad)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	return closedResult{Completed: int(completed.Load()), Errors: int(errors.Load()),
		Seconds: elapsed, RPS: float64(completed.Load()) / elapsed}
}

var contentKey = []byte(`"content":"`)

// hasContent is load.ts's /"content":"[^"]/: a delta with text in it, what a user sees as the
// first token (the role-only chunk before it has "content":"").
func hasContent(text []byte) bool {
	for {
		i := bytes.Index(text, contentKey)
		if i < 0 {
			return false
		}
		rest := text[i+len(contentKey):]
		if len(rest) > 0 && rest[0] != '"' {
			return true
		}
		text = rest
	}
}

var done = []byte("data: [DONE]")

// streamOutcome is one stream read to its end.
type streamOutcome struct {
	ok          bool
	ttfb, total time.Duration
	// worst is the longest wait beyond gap between consecutive reads after the first content.
	worst time.Duration
}

// oneStream sends req and reads the stream as load.ts does: the first content's arrival, the
// end, and (when gap > 0) every read's delay beyond the upstream's spacing.
func oneStream(t *target, req []byte, gap time.Duration) streamOutcome {
	sent := time.Now()
	var text []byte
	var first, last time.Time
	var worst time.Duration
	status, err := t.roundTrip(req, streamTimeout, func(piece []byte, at time.Time) {
		if first.IsZero() {
			text = append(text, piece...)
			if !hasContent(text) {
				return
			}
			first = at
		} else {
			// Only the end matters from here on: keep a tail for the [DONE] check.
			text = append(text, piece...)
			if len(text) > 256 {
				text = append(text[:0], text[len(text)-64:]...)
			}
			if gap > 0 {
				worst = max(worst, at.Sub(last)-gap)
			}
		}
		last = at
	})
	end := time.Now()
	if err != nil || status != 200 || first.IsZero() ||
		!bytes.HasSuffix(bytes.TrimRight(text, " \t\r\n"), done) {
		return streamOutcome{}
	}
	return streamOutcome{ok: true, ttfb: first.Sub(sent), total: end.Sub(sent), worst: worst}
}

type streamsResult struct {
	TTFB   []int64 `json:"ttfb_us"`
	Total  []int64 `json:"total_us"`
	Errors int     `json:"errors"`
}

// streams is load.ts's streamFirstByte: streams one after another, no queueing in the way.
func (g *generator) streams(t *target, secs float64) streamsResult {
	r := streamsResult{TTFB: []int64{}, Total: []int64{}}
	end := time.Now().Add(seconds(secs))
	for time.Now().Before(end) {
		o := oneStream(t, t.stream, 0)
		if !o.ok {
			r.Errors++
			continue
		}
		r.TTFB = append(r.TTFB, micros(o.ttfb))
		r.Total = append(r.Total, micros(o.total))
	}
	slices.Sort(r.TTFB)
	slices.Sort(r.Total)
	return r
}

type manyResult struct {
	TTFB      []int64 `json:"ttfb_us"`
	MaxStall  int64   `json:"max_stall_us"`
	Stalled   int     `json:"stalled"`
	Completed int     `json:"completed"`
	Errors    int     `json:"errors"`
}

// many is load.ts's manyStreams: `count` streams open at once, started evenly over the ramp,
// each on its own connection and goroutine, so one slow reader never delays another.
func (g *generator) many(t *target, count int, model string, gapMs, ramp float64) manyResult {
	req := t.request(g.p.body(model, true), g.p)
	gap := time.Duration(gapMs * float64(time.Millisecond))
	outcomes := make([]streamOutcome, count)
	var wg sync.WaitGroup
	step := seconds(ramp) / time.Duration(max(1, count))
	runtime.LockOSThread()
	start := time.Now()
	for i := range count {
		sleepUntil(start.Add(time.Duration(i) * step))
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes[i] = oneStream(t, req, gap)
		}()
	}
	runtime.UnlockOSThread()
	wg.Wait()
	r := manyResult{TTFB: []int64{}}
	var worst time.Duration
	for _, o := range outcomes {
		if !o.ok {
			r.Errors++
			continue
		}
		r.Completed++
		r.TTFB = append(r.TTFB, micros(o.ttfb))
		worst = max(worst, o.worst)
		if o.worst > 50*time.Millisecond {
			r.Stalled++
		}
	}
	slices.Sort(r.TTFB)
	r.MaxStall = micros(worst)
	return r
}

func (g *generator) run(c *command) (any, error) {
	if c.Op == "interleaved" {
		if c.Rate <= 0 || len(c.Targets) == 0 {
			return nil, fmt.Errorf("interleaved needs rate and targets")
		}
		ts := make([]*target, len(c.Targets))
		for k, where := range c.Targets {
			t, err := g.target(&command{URL: where.URL, Socket: where.Socket})
			if err != nil {
				return nil, err
			}
			ts[k] = t
		}
		return map[string][]openResult{"results": g.interleaved(ts, c.Rate, c.Seconds)}, nil
	}
	t, err := g.target(c)
	if err != nil {
		return nil, err
	}
	switch c.Op {
	case "open":
		if c.Rate <= 0 {
			return nil, fmt.Errorf("rate must be positive")
		}
		return g.open(t, c.Rate, c.Seconds), nil
	case "closed":
		return g.closed(t, c.Concurrency, c.Seconds), nil
	case "streams":
		return g.streams(t, c.Seconds), nil
	case "many":
		if c.Count <= 0 || c.Model == "" {
			return nil, fmt.Errorf("many needs count and model")
		}
		return g.many(t, c.Count, c.Model, c.GapMs, c.RampSeconds), nil
	case "warmup":
		// load.ts's warmUp: JIT, pools and caches warm on both paths before measuring.
		r := g.closed(t, c.Concurrency, c.Seconds)
		s := g.streams(t, min(0.5, c.Seconds))
		return map[string]int{"errors": r.Errors + s.Errors}, nil
	}
	return nil, fmt.Errorf("unknown op %q", c.Op)
}

func main() {
	bearer := flag.String("bearer", "sk-bench", "the bearer every request sends")
	promptBytes := flag.Int("prompt-bytes", 0, "pad the user prompt to about this many bytes")
	unique := flag.Bool("unique-prompts", false, "open every chat prompt with its own number")
	newTurns := flag.Bool("new-turns", false,
		"the prompt is the history, the same every time, and a new user turn with its own number follows")
	userAgent := flag.String("user-agent", "Deno", "user-agent header")
	flag.Parse()
	if *unique && *newTurns {
		fmt.Fprintln(os.Stderr, "loadgen: --unique-prompts and --new-turns: one or the other")
		os.Exit(2)
	}
	// Timers of the schedule: 1 ns slack instead of the default 50 µs.
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_TIMERSLACK, 1, 0)
	// The scheduler sleeps on a locked thread: with one P that thread would hold up every
	// request goroutine until sysmon retook the P.
	runtime.GOMAXPROCS(max(2, runtime.NumCPU()))
	debug.SetGCPercent(400)
	g := &generator{p: newPayloads(*bearer, *userAgent, max(0, *promptBytes), *unique,
		*newTurns),
		targets: map[string]*target{}}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64<<10), 1<<20)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		var c command
		var answer any
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			answer = map[string]string{"error": err.Error()}
		} else if r, err := g.run(&c); err != nil {
			answer = map[string]string{"error": err.Error()}
		} else {
			answer = r
		}
		line, _ := json.Marshal(answer)
		out.Write(line)
		out.WriteByte('\n')
		out.Flush()
	}
	for _, t := range g.targets {
		t.closeIdle()
	}
}
