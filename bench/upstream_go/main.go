// Command upstream_go is the benchmark's mock OpenAI upstream: the same answers as
// bench/upstream.ts (same JSON, same SSE events, same chunk spacing), at a fraction of the CPU,
// so the upstream is not what a run measures.
//
//	upstream_go [--chunks=N] [--chunk-delay-ms=MS]
//
// Listens on 127.0.0.1:0 and prints {"port":N} as its first stdout line. POST
// /v1/chat/completions answers with a chat.completion, or with an SSE stream when the body says
// "stream": true: the role-only event at once, then the content events, the stop event, the usage
// event (when stream_options.include_usage) and [DONE], each after the chunk delay. A model
// name ending in -c<N>-d<MS> asks for N chunks MS apart instead. POST /v1/traces answers {}
// (an OTLP/HTTP trace sink).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"pilotfish/bench/internal/h1"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const reply = "Hello! How can I help you today?"
const usage = `{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}`

var shape = regexp.MustCompile(`-c(\d+)-d(\d+)$`)

type chatBody struct {
	Model         any `json:"model"`
	Stream        any `json:"stream"`
	StreamOptions *struct {
		IncludeUsage any `json:"include_usage"`
	} `json:"stream_options"`
}

// quote is JSON.stringify of a string (json.Marshal would also escape <, > and &).
func quote(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// completion is upstream.ts's completion(), key for key.
func completion(id string, created int64, model string) string {
	return `{"id":` + quote(id) + `,"object":"chat.completion","created":` +
		strconv.FormatInt(created, 10) + `,"model":` + quote(model) +
		`,"choices":[{"index":0,"message":{"role":"assistant","content":` + quote(reply) +
		`,"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":` +
		usage + `,"service_tier":"default","system_fingerprint":"fp_bench"}`
}

// streamEvents is upstream.ts's streamEvents(): every event of one stream, encoded up front.
func streamEvents(id string, created int64, model string, chunks int, includeUsage bool) [][]byte {
	head := `{"id":` + quote(id) + `,"object":"chat.completion.chunk","created":` +
		strconv.FormatInt(created, 10) + `,"model":` + quote(model) +
		`,"system_fingerprint":"fp_bench","choices":`
	tail := "}"
	if includeUsage {
		tail = `,"usage":null}`
	}
	chunk := func(delta string, finish string) []byte {
		return []byte("data: " + head + `[{"index":0,"delta":` + delta +
			`,"logprobs":null,"finish_reason":` + finish + `}]` + tail + "\n\n")
	}
	events := [][]byte{chunk(`{"role":"assistant","content":"","refusal":null}`, "null")}
	size := max(1, int(math.Ceil(float64(len(reply))/float64(max(1, chunks)))))
	for i := 0; i < len(reply) && chunks > 0; i += size {
		events = append(events, chunk(`{"content":`+quote(reply[i:min(len(reply), i+size)])+`}`, "null"))
	}
	events = append(events, chunk(`{}`, `"stop"`))
	if includeUsage {
		events = append(events, []byte("data: "+head+`[],"usage":`+usage+"}\n\n"))
	}
	return append(events, []byte("data: [DONE]\n\n"))
}

// server answers on raw HTTP/1.1 keep-alive connections, one goroutine each: net/http's
// per-request objects cost twice Deno.serve's CPU here, and this CPU shares a core with the
// load generator.
type server struct {
	chunks   int
	delay    time.Duration
	seq      atomic.Int64
	date     atomic.Pointer[string]
	notFound []byte
}

var errBadRequest = errors.New("bad request")

// serve reads requests off one connection until it closes or a request asks to.
func (s *server) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 16<<10)
	var out []byte
	for {
		body, keep, err := readRequest(r, c)
		if err != nil {
			if err == errBadRequest {
				c.Write([]byte("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"))
			}
			return
		}
		if out, err = s.answer(c, body.path, body.method, body.data, out[:0]); err != nil || !keep {
			return
		}
	}
}

type request struct {
	method, path string
	data         []byte
}

// readRequest parses one request: the line, the headers that frame the body, the body.
func readRequest(r *bufio.Reader, c net.Conn) (request, bool, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return request{}, false, err
	}
	parts := strings.Fields(string(line))
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return request{}, false, errBadRequest
	}
	req := request{method: parts[0], path: parts[1]}
	f := h1.Framing{Length: -1, Keep: parts[2] == "HTTP/1.1"}
	err = f.ReadHeaders(r, func(name, value []byte) {
		if bytes.EqualFold(name, []byte("expect")) && bytes.EqualFold(value, []byte("100-continue")) {
			c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
		}
	})
	if err != nil {
		if err == h1.ErrMalformed {
			err = errBadRequest
		}
		return req, false, err
	}
	keep, chunked := f.Keep, f.Chunked
	length := max(f.Length, 0)
	if !chunked {
		req.data = make([]byte, length)
		_, err = io.ReadFull(r, req.data)
		return req, keep, err
	}
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return req, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if semi := bytes.IndexByte(line, ';'); semi >= 0 {
			line = line[:semi]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil || size < 0 {
			return req, false, errBadRequest
		}
		if size == 0 {
			for { // trailers up to the empty line
				line, err = r.ReadSlice('\n')
				if err != nil {
					return req, false, err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return req, keep, nil
				}
			}
		}
		start := len(req.data)
		req.data = append(req.data, make([]byte, size)...)
		if _, err = io.ReadFull(r, req.data[start:]); err != nil {
			return req, false, err
		}
		if _, err = r.Discard(2); err != nil {
			return req, false, err
		}
	}
}

func (s *server) head(out []byte, status, contentType string, length int) []byte {
	out = append(out, "HTTP/1.1 "...)
	out = append(out, status...)
	out = append(out, "\r\ncontent-type: "...)
	out = append(out, contentType...)
	if length >= 0 {
		out = append(out, "\r\ncontent-length: "...)
		out = strconv.AppendInt(out, int64(length), 10)
	} else {
		out = append(out, "\r\ncache-control: no-cache\r\ntransfer-encoding: chunked"...)
	}
	out = append(out, "\r\ndate: "...)
	out = append(out, *s.date.Load()...)
	return append(out, "\r\n\r\n"...)
}

// answer writes upstream.ts's answer to one request; out is a reusable buffer.
func (s *server) answer(c net.Conn, path, method string, data, out []byte) ([]byte, error) {
	// An OTLP/HTTP trace sink (observability fragments point their exporter here): a
	// collector's success reply, so the bench prices exports that succeed.
	if method == "POST" && strings.HasSuffix(path, "/v1/traces") {
		out = append(s.head(out, "200 OK", "application/json", 2), "{}"...)
		_, err := c.Write(out)
		return out, err
	}
	if method != "POST" || !strings.HasSuffix(path, "/v1/chat/completions") {
		out = append(s.head(out, "404 Not Found", "application/json", len(s.notFound)), s.notFound...)
		_, err := c.Write(out)
		return out, err
	}
	// Parse like a real upstream would: the cost belongs in every target's numbers equally.
	var body chatBody
	if err := json.Unmarshal(data, &body); err != nil {
		const msg = "Internal Server Error"
		out = append(s.head(out, "500 Internal Server Error", "text/plain;charset=UTF-8", len(msg)), msg...)
		_, err := c.Write(out)
		return out, err
	}
	model, ok := body.Model.(string)
	if !ok {
		model = "gpt-4o-mini"
	}
	id := "chatcmpl-bench" + strconv.FormatInt(s.seq.Add(1), 10)
	created := time.Now().Unix()
	if body.Stream != true {
		text := completion(id, created, model)
		out = append(s.head(out, "200 OK", "application/json", len(text)), text...)
		_, err := c.Write(out)
		return out, err
	}
	chunks, delay := s.chunks, s.delay
	if m := shape.FindStringSubmatch(model); m != nil {
		chunks, _ = strconv.Atoi(m[1])
		ms, _ := strconv.Atoi(m[2])
		delay = time.Duration(ms) * time.Millisecond
	}
	includeUsage := body.StreamOptions != nil && body.StreamOptions.IncludeUsage == true
	events := streamEvents(id, created, model, chunks, includeUsage)
	out = s.head(out, "200 OK", "text/event-stream; charset=utf-8", -1)
	for i, event := range events {
		if i > 0 && delay > 0 {
			time.Sleep(delay)
		}
		out = strconv.AppendInt(out, int64(len(event)), 16)
		out = append(out, "\r\n"...)
		out = append(out, event...)
		out = append(out, "\r\n"...)
		if _, err := c.Write(out); err != nil {
			return out, err // the client went away: stop, as upstream.ts's cancel() does
		}
		out = out[:0]
	}
	// upstream.ts's pull() waits once more before it closes: same end of stream here.
	if delay > 0 {
		time.Sleep(delay)
	}
	_, err := c.Write(append(out, "0\r\n\r\n"...))
	return out, err
}

// setDate keeps the date header's text, which changes once a second, out of the hot path.
func (s *server) setDate() {
	d := time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")
	s.date.Store(&d)
}

func (s *server) tickDates() {
	for {
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		s.setDate()
	}
}

func main() {
	chunks := flag.Int("chunks", 8, "content chunks per stream")
	delayMs := flag.Float64("chunk-delay-ms", 2, "milliseconds between stream events")
	flag.Parse()
	if *chunks < 0 || *delayMs < 0 {
		fmt.Fprintln(os.Stderr, "--chunks and --chunk-delay-ms must be non-negative")
		os.Exit(2)
	}
	// A mock's heap is tiny and short-lived: collect rarely rather than on every few requests.
	debug.SetGCPercent(400)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s := &server{
		chunks:   *chunks,
		delay:    time.Duration(*delayMs * float64(time.Millisecond)),
		notFound: []byte(`{"error":{"message":"not found","type":"invalid_request_error"}}`),
	}
	s.setDate()
	go s.tickDates()
	// The parent reads this line to learn where we are; nothing else goes to stdout.
	fmt.Printf("{\"port\":%d}\n", ln.Addr().(*net.TCPAddr).Port)
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go s.serve(c)
	}
}
