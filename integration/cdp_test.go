package integration

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// chromiumPath is where the end-to-end browser tests look for Chromium;
// CHROMIUM overrides it.
const chromiumPath = "/usr/bin/chromium"

// headless is a headless Chromium driven over the Chrome DevTools
// Protocol: just the few commands the tests need (navigate, evaluate,
// screenshot), over golang.org/x/net/websocket.
type headless struct {
	t    *testing.T
	cmd  *exec.Cmd
	conn *websocket.Conn

	mu      sync.Mutex
	nextID  int
	pending map[int]chan cdpReply
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// startChromium starts headless Chromium with one page, or skips the test
// when there is no Chromium.
func startChromium(t *testing.T) *headless {
	t.Helper()
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		bin = chromiumPath
	}
	if _, err := exec.LookPath(bin); err != nil {
		msg := fmt.Sprintf("no Chromium at %s (set CHROMIUM to its path, or apt-get install chromium): the headless browser test needs one", bin)
		if os.Getenv("DCR_REQUIRE_CHROMIUM") != "" {
			t.Fatal(msg + "; DCR_REQUIRE_CHROMIUM is set, so it may not skip")
		}
		t.Skip(msg)
	}
	// Not t.TempDir: Chromium's helper processes may still be writing to
	// the profile for a moment after it is killed, and the directory is
	// removed once they are gone.
	profile, err := os.MkdirTemp("", "dcr-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0", "--remote-allow-origins=*",
		"--user-data-dir="+profile, "about:blank")
	// A process group of its own, so that the cleanup ends Chromium's
	// helper processes with it, and nothing else.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &headless{t: t, cmd: cmd, pending: map[int]chan cdpReply{}}
	t.Cleanup(func() {
		if h.conn != nil {
			h.conn.Close()
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// Chromium writes its port to DevToolsActivePort once it listens.
	var port string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if f, err := os.Open(filepath.Join(profile, "DevToolsActivePort")); err == nil {
			sc := bufio.NewScanner(f)
			if sc.Scan() {
				port = strings.TrimSpace(sc.Text())
			}
			f.Close()
			if port != "" {
				break
			}
		}
	}
	if port == "" {
		t.Fatal("Chromium did not open its DevTools port")
	}
	req, _ := http.NewRequest("PUT", "http://127.0.0.1:"+port+"/json/new?about:blank", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var target struct {
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	err = json.NewDecoder(resp.Body).Decode(&target)
	resp.Body.Close()
	if err != nil || target.WebSocketDebuggerURL == "" {
		t.Fatalf("new page: %v", err)
	}
	if h.conn, err = websocket.Dial(target.WebSocketDebuggerURL, "", "http://127.0.0.1/"); err != nil {
		t.Fatal(err)
	}
	h.conn.MaxPayloadBytes = 64 << 20
	go h.read()
	return h
}

// read dispatches replies to the calls waiting for them; events are
// dropped (the tests poll instead).
func (h *headless) read() {
	for {
		var msg struct {
			ID int `json:"id"`
			cdpReply
		}
		if err := websocket.JSON.Receive(h.conn, &msg); err != nil {
			h.mu.Lock()
			for id, ch := range h.pending {
				close(ch)
				delete(h.pending, id)
			}
			h.mu.Unlock()
			return
		}
		h.mu.Lock()
		ch := h.pending[msg.ID]
		delete(h.pending, msg.ID)
		h.mu.Unlock()
		if ch != nil {
			ch <- msg.cdpReply
		}
	}
}

// call sends one DevTools command and decodes its result into out.
func (h *headless) call(method string, params any, out any) {
	h.t.Helper()
	h.mu.Lock()
	h.nextID++
	id := h.nextID
	ch := make(chan cdpReply, 1)
	h.pending[id] = ch
	h.mu.Unlock()
	if err := websocket.JSON.Send(h.conn, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		h.t.Fatal(err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			h.t.Fatalf("%s: the browser went away", method)
		}
		if r.Error != nil {
			h.t.Fatalf("%s: %s", method, r.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(r.Result, out); err != nil {
				h.t.Fatal(err)
			}
		}
	case <-time.After(30 * time.Second):
		h.t.Fatalf("%s: no answer", method)
	}
}

// eval runs a JavaScript expression in the page and returns its value.
func (h *headless) eval(expr string) any {
	h.t.Helper()
	var out struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails any `json:"exceptionDetails"`
	}
	h.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &out)
	if out.ExceptionDetails != nil {
		h.t.Fatalf("%s: %v", expr, out.ExceptionDetails)
	}
	return out.Result.Value
}

// navigate opens url in the page.
func (h *headless) navigate(url string) {
	h.t.Helper()
	h.markStale()
	h.call("Page.navigate", map[string]any{"url": url}, nil)
}

// act runs JavaScript that leads to another page (a click).
func (h *headless) act(js string) {
	h.t.Helper()
	h.markStale()
	h.eval(js)
}

// markStale marks the current document, so that waitFor can tell the next
// one from it even when both are at the same URL.
func (h *headless) markStale() {
	h.t.Helper()
	h.eval(`window.__dcrStale = true`)
}

// waitFor waits until a new page (not the one navigate or act left),
// fully loaded, is at a URL starting with prefix, and returns its text.
func (h *headless) waitFor(prefix string) string {
	h.t.Helper()
	var last any
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		last = h.eval(`location.href + "\n" + document.readyState + "\n" + (window.__dcrStale === true)`)
		parts := strings.Split(fmt.Sprint(last), "\n")
		if len(parts) == 3 && strings.HasPrefix(parts[0], prefix) && parts[1] == "complete" && parts[2] == "false" {
			return fmt.Sprint(h.eval(`document.body ? document.body.innerText : ""`))
		}
	}
	h.t.Fatalf("the page did not reach %s; it is at %v", prefix, last)
	return ""
}

// screenshot saves the page as dir/name-<width>.png at each width.
func (h *headless) screenshot(dir, name string, widths ...int) {
	h.t.Helper()
	for _, w := range widths {
		h.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": w, "height": 900, "deviceScaleFactor": 1, "mobile": w < 600}, nil)
		var shot struct {
			Data string `json:"data"`
		}
		h.call("Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
		png, err := base64.StdEncoding.DecodeString(shot.Data)
		if err != nil || len(png) < 1000 {
			h.t.Fatalf("screenshot %s at %d: %v (%d bytes)", name, w, err, len(png))
		}
		file := filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, w))
		if err := os.WriteFile(file, png, 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	h.call("Emulation.clearDeviceMetricsOverride", map[string]any{}, nil)
}
