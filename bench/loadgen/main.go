// Command loadgen sends one kind of HTTP request to a server on loopback
// from many connections at once, for a fixed time or a fixed count, and
// prints what it measured as one JSON line. bench/run drives it.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
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
	flag.Var(&hdrs, "H", `request header "Name: value" (repeatable)`)
	flag.Parse()
	if !strings.HasPrefix(*target, "http://127.0.0.1:") && !strings.HasPrefix(*target, "http://localhost:") {
		fmt.Fprintln(os.Stderr, "loadgen: -url must be on loopback (http://127.0.0.1:PORT/...)")
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

	transport := &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
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
			for time.Now().Before(deadline) {
				if *count > 0 && sent.Add(1) > *count {
					break
				} else if *count == 0 {
					sent.Add(1)
				}
				req, _ := http.NewRequest(*method, *target, bytes.NewBufferString(*body))
				for _, h := range hdrs {
					k, v, _ := strings.Cut(h, ":")
					req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
				}
				if bearers != nil {
					req.Header.Set("Authorization", "Bearer "+bearers[(next.Add(1)-1)%uint64(len(bearers))])
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				var got map[string]any
				if saved != nil && resp.StatusCode == *expect {
					_ = json.NewDecoder(resp.Body).Decode(&got)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				local = append(local, time.Since(t0))
				if resp.StatusCode != *expect {
					failed.Add(1)
				} else if v, ok := got[*save].(string); saved != nil && ok {
					mu.Lock()
					_, _ = fmt.Fprintln(saved, v)
					mu.Unlock()
				}
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
