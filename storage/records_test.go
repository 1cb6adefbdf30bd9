package storage

import "testing"

// The reuse window is counted in whole seconds and taken short: a
// presentation 10 s (as the clock's seconds count) after the first use is
// out of a 10 s window, so it is never longer than configured.
func TestWithinReuseWindow(t *testing.T) {
	for _, tc := range []struct {
		usedAt, at, window int64
		want               bool
	}{
		{100, 100, 10, true}, {100, 109, 10, true}, {100, 110, 10, false}, {100, 111, 10, false},
		{100, 100, 0, false}, {100, 100, 1, true}, {100, 101, 1, false},
	} {
		if got := WithinReuseWindow(tc.usedAt, tc.at, tc.window); got != tc.want {
			t.Errorf("used %d, again %d, window %d: %v, want %v", tc.usedAt, tc.at, tc.window, got, tc.want)
		}
	}
}
