package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestInflightKeepsResultForRetry(t *testing.T) {
	var f Inflight[string]
	var runs atomic.Int32
	release := make(chan struct{})
	slow := func(ctx context.Context) (string, error) {
		runs.Add(1)
		<-release
		if ctx.Err() != nil {
			return "", ctx.Err() // must not happen: the work is detached
		}
		return "pod-1", nil
	}
	// The first client gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := f.Do(ctx, "name", time.Minute, slow); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first call: %v", err)
	}
	close(release)
	// Its retry gets the result of the same run.
	got, err := f.Do(context.Background(), "name", time.Minute, slow)
	if err != nil || got != "pod-1" || runs.Load() != 1 {
		t.Fatalf("retry = %q %v after %d runs", got, err, runs.Load())
	}
	// Once collected, the name runs afresh.
	if _, err := f.Do(context.Background(), "name", time.Minute, slow); err != nil || runs.Load() != 2 {
		t.Fatalf("later call: %v, runs %d", err, runs.Load())
	}
}

func TestInflightDoesNotKeepFailures(t *testing.T) {
	var f Inflight[int]
	var runs atomic.Int32
	fail := func(context.Context) (int, error) { runs.Add(1); return 0, errors.New("boom") }
	for range 2 {
		if _, err := f.Do(context.Background(), "k", time.Minute, fail); err == nil {
			t.Fatal("want error")
		}
	}
	if runs.Load() != 2 {
		t.Errorf("failures must rerun: %d runs", runs.Load())
	}
}

func TestInflightExpires(t *testing.T) {
	var f Inflight[int]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	release := make(chan struct{})
	_, _ = f.Do(ctx, "k", 10*time.Millisecond, func(context.Context) (int, error) { <-release; return 1, nil })
	close(release)
	time.Sleep(100 * time.Millisecond)
	f.mu.Lock()
	n := len(f.calls)
	f.mu.Unlock()
	if n != 0 {
		t.Errorf("an uncollected result outlived its keep time")
	}
}
