package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"pilotfish/bench/internal/h1"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A minimal HTTP/1.1 keep-alive client: the requests are ours and fixed, so they are encoded
// once per target and written with one syscall; responses are parsed just enough (status,
// framing, connection) to find the end of the body. net/http would cost several times more CPU
// per request, and that CPU is taken from the mock upstream on the same core.

// target is one endpoint with its own pool of idle connections (each target starts cold and
// never inherits another's warm connections).
type target struct {
	network, addr string
	chat, stream  []byte
	// stampAt: where the chat request's uniqueMark digits are; -1 when prompts are all the same.
	stampAt    int
	host, path string
	mu         sync.Mutex
	idle       []*conn
	// The open loop's own connections, each with a reader goroutine (see open.go).
	openIdle []*openConn
}

func newTarget(rawURL, socket string, p *payloads) (*target, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	t := &target{network: "tcp", addr: u.Host, host: u.Host, path: u.RequestURI()}
	if socket != "" {
		t.network, t.addr = "unix", socket
	}
	t.chat = t.request(p.chat, p)
	t.stream = t.request(p.stream, p)
	t.stampAt = -1
	if p.unique {
		t.stampAt = bytes.Index(t.chat, []byte(uniqueMark)) + 1
	}
	return t, nil
}

// stamps numbers the unique prompts across every target and connection.
var stamps atomic.Uint64

// chatRequest is the chat request to send next: t.chat itself, or with unique prompts buf (a
// copy of t.chat made on first use, one per sender) with the next number written in.
func (t *target) chatRequest(buf []byte) []byte {
	if t.stampAt < 0 {
		return t.chat
	}
	if buf == nil {
		buf = bytes.Clone(t.chat)
	}
	n := stamps.Add(1)
	for i := t.stampAt + 9; i >= t.stampAt; i-- {
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return buf
}

// request encodes a POST with the headers Deno's fetch sends, so a proxy's header handling
// costs what it cost under the Deno load generator.
func (t *target) request(body []byte, p *payloads) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nhost: %s\r\ncontent-length: %d\r\n"+
		"content-type: application/json\r\nauthorization: Bearer %s\r\naccept: */*\r\n"+
		"accept-language: *\r\nuser-agent: %s\r\naccept-encoding: gzip,br\r\n\r\n",
		t.path, t.host, len(body), p.bearer, p.userAgent)
	b.Write(body)
	return b.Bytes()
}

// conn is one keep-alive connection; reads go through a counter so a reused connection that the
// server closed while idle can be told apart from a failure mid-response.
type conn struct {
	c  net.Conn
	tr *timedReader
	r  *bufio.Reader
}

// timedReader remembers when the last read returned data: the arrival time of what the bufio
// layer above hands out.
type timedReader struct {
	c     net.Conn
	bytes int64
	at    time.Time
}

func (t *timedReader) Read(p []byte) (int, error) {
	n, err := t.c.Read(p)
	if n > 0 {
		t.bytes += int64(n)
		t.at = time.Now()
	}
	return n, err
}

func (t *target) dial() (*conn, error) {
	nc, err := net.DialTimeout(t.network, t.addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	tr := &timedReader{c: nc}
	return &conn{c: nc, tr: tr, r: bufio.NewReaderSize(tr, 32<<10)}, nil
}

func (t *target) get() (*conn, bool, error) {
	t.mu.Lock()
	if n := len(t.idle); n > 0 {
		// Last in, first out: the hot connections stay hot, as in an HTTP client's pool.
		c := t.idle[n-1]
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		return c, true, nil
	}
	t.mu.Unlock()
	c, err := t.dial()
	return c, false, err
}

func (t *target) put(c *conn) {
	t.mu.Lock()
	t.idle = append(t.idle, c)
	t.mu.Unlock()
}

func (t *target) closeIdle() {
	t.mu.Lock()
	for _, c := range t.idle {
		c.c.Close()
	}
	for _, c := range t.openIdle {
		c.c.Close()
	}
	t.idle, t.openIdle = nil, nil
	t.mu.Unlock()
}

// bodyFunc sees the response body piece by piece with the time the piece arrived.
type bodyFunc func(piece []byte, at time.Time)

// roundTrip sends req and reads the whole response, returning its status. A reused connection
// that fails before any byte of the answer is retried once on a fresh one (the server may have
// closed it while idle), as HTTP clients do.
func (t *target) roundTrip(req []byte, timeout time.Duration, onBody bodyFunc) (int, error) {
	for attempt := 0; ; attempt++ {
		var c *conn
		var reused bool
		var err error
		if attempt == 0 {
			c, reused, err = t.get()
		} else {
			// The retry gets a new connection: the idle ones may be as stale as the last.
			c, err = t.dial()
		}
		if err != nil {
			return 0, err
		}
		before := c.tr.bytes
		status, keep, err := exchange(c, req, timeout, onBody)
		if err != nil {
			c.c.Close()
			if reused && attempt == 0 && c.tr.bytes == before {
				continue
			}
			return 0, err
		}
		if keep {
			t.put(c)
		} else {
			c.c.Close()
		}
		return status, nil
	}
}

var errMalformed = errors.New("malformed response")

func exchange(c *conn, req []byte, timeout time.Duration, onBody bodyFunc) (int, bool, error) {
	if err := c.c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, false, err
	}
	if _, err := c.c.Write(req); err != nil {
		return 0, false, err
	}
	return readResponse(c, onBody)
}

// readResponse reads one response off c: its status, whether c stays open, and the body.
func readResponse(c *conn, onBody bodyFunc) (int, bool, error) {
	r := c.r
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errMalformed
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, errMalformed
	}
	f := h1.Framing{Length: -1, Keep: line[7] == '1'}
	if err := f.ReadHeaders(r, nil); err != nil {
		if err == h1.ErrMalformed {
			err = errMalformed
		}
		return 0, false, err
	}
	keep, length, chunked := f.Keep, f.Length, f.Chunked
	if status == 204 || status == 304 || (status >= 100 && status < 200) {
		return status, keep, nil
	}
	switch {
	case chunked:
		err = readChunked(c, onBody)
	case length >= 0:
		err = readN(c, length, onBody)
	default:
		// Close-delimited: the body runs to the end of the connection.
		keep = false
		err = readN(c, -1, onBody)
	}
	return status, keep, err
}

// readN reads n body bytes (to EOF when n < 0), one bufio read at a time so each piece carries
// the arrival time of the read that brought it.
func readN(c *conn, n int64, onBody bodyFunc) error {
	for n != 0 {
		if c.r.Buffered() == 0 {
			if _, err := c.r.Peek(1); err != nil {
				if n < 0 && err == io.EOF {
					return nil
				}
				return err
			}
		}
		take := c.r.Buffered()
		if n >= 0 && int64(take) > n {
			take = int(n)
		}
		piece, _ := c.r.Peek(take)
		if onBody != nil {
			onBody(piece, c.tr.at)
		}
		c.r.Discard(take)
		if n > 0 {
			n -= int64(take)
		}
	}
	return nil
}

func readChunked(c *conn, onBody bodyFunc) error {
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if semi := bytes.IndexByte(line, ';'); semi >= 0 {
			line = line[:semi]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return errMalformed
		}
		if size == 0 {
			// Trailers, then the empty line that ends the message.
			for {
				line, err = c.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if err := readN(c, size, onBody); err != nil {
			return err
		}
		if _, err := c.r.Discard(2); err != nil {
			return err
		}
	}
}
