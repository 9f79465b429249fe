// Package h1 is the part of HTTP/1.1 framing that the bench's load generator (reading
// responses) and mock upstream (reading requests) share: the header block, and what it says
// about the body's length and the connection.
package h1

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
)

// ErrMalformed is a header line without a colon or an unreadable Content-Length.
var ErrMalformed = errors.New("malformed header")

// Framing is what the headers say about the body and the connection.
type Framing struct {
	// Length is Content-Length; -1 when the message has none.
	Length  int64
	Chunked bool
	// Keep starts as the protocol version's default; Connection: close/keep-alive overrides it.
	Keep bool
}

// ReadHeaders reads header lines up to the empty one, applying the framing headers to f and
// passing every other header to other (when not nil). Read errors are returned as they are;
// a malformed line is ErrMalformed.
func (f *Framing) ReadHeaders(r *bufio.Reader, other func(name, value []byte)) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return ErrMalformed
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("content-length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return ErrMalformed
			}
			f.Length = n
		case bytes.EqualFold(name, []byte("transfer-encoding")):
			f.Chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case bytes.EqualFold(name, []byte("connection")):
			if bytes.EqualFold(value, []byte("close")) {
				f.Keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				f.Keep = true
			}
		default:
			if other != nil {
				other(name, value)
			}
		}
	}
}
