// Command loadgen sends one kind of HTTP request to a server on loopback
// from many connections at once, for a fixed time or a fixed count, and
// prints what it measured as one JSON line. bench/run drives it.
//
// It works the way wrk does: each connection is a keep-alive HTTP/1.1
// connection that writes a request prepared once and reads the answer
// with a minimal parser. The load generator shares the machine's two
// cores with Caddy, so its own cost per request decides how much CPU is
// left for Caddy: net/http's client spent 41 µs of CPU per static
// request and 62 µs per token request here, against 20 and 24 µs for
// wrk, and bench/run's rates measured the client as much as Caddy.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(v string) error { *h = append(*h, v); return nil }

type result struct {
	Name     string  `json:"name"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
}

// timeout bounds one request, as the net/http client's Timeout did.
const timeout = 10 * time.Second

func main() {
	var (
		name     = flag.String("name", "run", "label for the result")
		target   = flag.String("url", "", "request URL (loopback only)")
		method   = flag.String("method", "GET", "request method")
		body     = flag.String("body", "", "request body")
		expect   = flag.Int("expect", 200, "status that counts as success")
		conns    = flag.Int("c", 16, "concurrent connections")
		duration = flag.Duration("d", 10*time.Second, "how long to send (bounded by -n)")
		count    = flag.Int64("n", 0, "stop after this many requests (0: no limit)")
		tokens   = flag.String("tokens", "", "file of access tokens, one a line, sent in turn as Bearer tokens")
		save     = flag.String("save", "", "JSON string member of each successful response to write to -save-to, one a line")
		saveTo   = flag.String("save-to", "", "file that -save writes")
		hdrs     headers
	)
	flag.Var(&hdrs, "H", `request header "Name: value" (repeatable; a later one replaces an earlier one of the same name)`)
	flag.Parse()
	if !strings.HasPrefix(*target, "http://127.0.0.1:") && !strings.HasPrefix(*target, "http://localhost:") {
		fmt.Fprintln(os.Stderr, "loadgen: -url must be on loopback (http://127.0.0.1:PORT/...)")
		os.Exit(2)
	}
	u, err := url.Parse(*target)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}

	var bearers []string
	if *tokens != "" {
		b, err := os.ReadFile(*tokens)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
		bearers = strings.Fields(string(b))
		if len(bearers) == 0 {
			fmt.Fprintln(os.Stderr, "loadgen: no tokens in", *tokens)
			os.Exit(2)
		}
	}
	var saved *os.File
	if *save != "" {
		var err error
		if saved, err = os.Create(*saveTo); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(2)
		}
		defer saved.Close()
	}

	// The request up to its Authorization header, and from there to the
	// end: with -tokens, each request puts its token between the two.
	var head, tail bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\n", *method, u.RequestURI(), u.Host)
	names := []string{}
	values := map[string]string{}
	for _, h := range hdrs {
		k, v, _ := strings.Cut(h, ":")
		k = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(k))
		if _, ok := values[k]; !ok {
			names = append(names, k)
		}
		values[k] = strings.TrimSpace(v)
	}
	for _, k := range names {
		if bearers == nil || k != "Authorization" {
			fmt.Fprintf(&head, "%s: %s\r\n", k, values[k])
		}
	}
	if *body != "" || (*method != "GET" && *method != "HEAD") {
		fmt.Fprintf(&tail, "Content-Length: %d\r\n", len(*body))
	}
	tail.WriteString("\r\n")
	tail.WriteString(*body)

	var (
		sent, failed atomic.Int64
		next         atomic.Uint64 // the next of bearers
		mu           sync.Mutex
		latencies    []time.Duration
		wg           sync.WaitGroup
	)
	deadline := time.Now().Add(*duration)
	start := time.Now()
	for range *conns {
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			var c *conn
			req := slices.Clip(head.Bytes())
			for time.Now().Before(deadline) {
				if *count > 0 && sent.Add(1) > *count {
					break
				} else if *count == 0 {
					sent.Add(1)
				}
				if bearers != nil {
					req = append(req[:head.Len()], "Authorization: Bearer "...)
					req = append(req, bearers[(next.Add(1)-1)%uint64(len(bearers))]...)
					req = append(req, "\r\n"...)
				} else {
					req = req[:head.Len()]
				}
				req = append(req, tail.Bytes()...)
				t0 := time.Now()
				if c == nil {
					var err error
					if c, err = dial(u.Host); err != nil {
						failed.Add(1)
						time.Sleep(10 * time.Millisecond)
						continue
					}
				}
				status, respBody, keep, err := c.roundTrip(req, saved != nil)
				if err != nil || !keep {
					c.Close()
					c = nil
				}
				if err != nil {
					failed.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
				if status != *expect {
					failed.Add(1)
				} else if saved != nil {
					var got map[string]any
					_ = json.Unmarshal(respBody, &got)
					if v, ok := got[*save].(string); ok {
						mu.Lock()
						_, _ = fmt.Fprintln(saved, v)
						mu.Unlock()
					}
				}
			}
			if c != nil {
				c.Close()
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	done := int64(len(latencies))
	res := result{Name: *name, Requests: done, Errors: failed.Load(), Seconds: elapsed,
		RPS: float64(done-failed.Load()) / elapsed, P50ms: pct(0.50), P99ms: pct(0.99)}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	if res.Errors > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: %s: %d of %d requests failed\n", *name, res.Errors, done)
	}
}

// conn is one keep-alive HTTP/1.1 connection.
type conn struct {
	net.Conn
	r    *bufio.Reader
	body []byte // the last response's body, reused
}

func dial(host string) (*conn, error) {
	nc, err := net.DialTimeout("tcp", host, timeout)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: nc, r: bufio.NewReaderSize(nc, 16<<10)}, nil
}

var errMalformed = errors.New("malformed response")

// roundTrip writes req and reads the response: its status, its body when
// keepBody (otherwise it is read and dropped) and whether the connection
// may carry another request.
func (c *conn) roundTrip(req []byte, keepBody bool) (status int, body []byte, keep bool, err error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		return 0, nil, false, err
	}
	line, err := c.line()
	if err != nil {
		return 0, nil, false, err
	}
	// HTTP/1.1 200 OK
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, nil, false, errMalformed
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, nil, false, errMalformed
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		line, err := c.line()
		if err != nil {
			return 0, nil, false, err
		}
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, nil, false, errMalformed
		}
		v = bytes.TrimSpace(v)
		switch {
		case asciiEqualFold(k, "Content-Length"):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return 0, nil, false, errMalformed
			}
		case asciiEqualFold(k, "Transfer-Encoding"):
			chunked = asciiEqualFold(v, "chunked")
		case asciiEqualFold(k, "Connection"):
			if asciiEqualFold(v, "close") {
				keep = false
			}
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		for {
			line, err := c.line()
			if err != nil {
				return 0, nil, false, err
			}
			size, _, _ := bytes.Cut(line, []byte(";"))
			n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
			if err != nil || n < 0 {
				return 0, nil, false, errMalformed
			}
			if n == 0 {
				for { // trailers, then the blank line
					if line, err = c.line(); err != nil {
						return 0, nil, false, err
					}
					if len(line) == 0 {
						break
					}
				}
				break
			}
			if err := c.readBody(int(n), keepBody); err != nil {
				return 0, nil, false, err
			}
			if line, err = c.line(); err != nil || len(line) != 0 {
				return 0, nil, false, errMalformed
			}
		}
	case length >= 0:
		if err := c.readBody(length, keepBody); err != nil {
			return 0, nil, false, err
		}
	case status == 204 || status == 304 || status/100 == 1:
	default: // the body ends with the connection
		b, err := io.ReadAll(c.r)
		if err != nil {
			return 0, nil, false, err
		}
		c.body = append(c.body, b...)
		keep = false
	}
	return status, c.body, keep, nil
}

// line reads one line without its CRLF.
func (c *conn) line() ([]byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// readBody reads n bytes of body, kept in c.body when keep.
func (c *conn) readBody(n int, keep bool) error {
	if !keep {
		_, err := c.r.Discard(n)
		return err
	}
	start := len(c.body)
	c.body = slices.Grow(c.body, n)[:start+n]
	_, err := io.ReadFull(c.r, c.body[start:])
	return err
}

func asciiEqualFold(b []byte, s string) bool {
	return len(b) == len(s) && strings.EqualFold(string(b), s)
}
