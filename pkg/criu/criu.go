// Package criu tells whether CRIU can checkpoint and restore containers on this host.
// runc runs the `criu` binary it finds on the shim's PATH; keelson looks for the same
// binary and asks it (`criu check`) before it starts a checkpoint or a restore, so a
// host where CRIU cannot run gets a clear FailedPrecondition instead of runc's error
// halfway through.
package criu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
)

// Checker finds and checks CRIU until it works; a failed check is answered from
// memory for retryAfter, then made again (CRIU may be installed meanwhile).
type Checker struct {
	// Dirs are searched for `criu` before PATH (the supervised containerd's bin dir,
	// which starts the shims' PATH).
	Dirs []string

	mu       sync.Mutex
	ok       bool
	failed   error
	failedAt time.Time
}

const retryAfter = 5 * time.Minute

// Check returns nil when CRIU can run here, else an error wrapping
// errdefs.ErrFailedPrecondition that says why.
func (c *Checker) Check() error {
	if c == nil {
		return fmt.Errorf("checkpoint/restore is off: %w", errdefs.ErrFailedPrecondition)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok {
		return nil
	}
	if c.failed != nil && time.Since(c.failedAt) < retryAfter {
		return c.failed
	}
	if c.failed = c.check(); c.failed != nil {
		c.failedAt = time.Now()
		return c.failed
	}
	c.ok = true
	return nil
}

// check runs `criu check`, then dumps a sleeping process (leaving it running):
// `criu check` passes on hosts where a dump hangs (seen on a Firecracker VM, kernel
// 6.18: the parasite never traps back), and a checkpoint must not hang for that.
func (c *Checker) check() error {
	path := c.find()
	if path == "" {
		return fmt.Errorf("checkpoint/restore needs CRIU: no criu binary in %v or on PATH (hack/install-deps.sh builds one): %w", c.Dirs, errdefs.ErrFailedPrecondition)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "check")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("checkpoint/restore needs CRIU, and `%s check` fails on this host (%v): %s: %w", path, err, lastLines(out.String(), 3), errdefs.ErrFailedPrecondition)
	}
	if err := trialDump(ctx, path); err != nil {
		return fmt.Errorf("checkpoint/restore needs CRIU, and CRIU (%s) cannot dump a sleeping process on this host: %v: %w", path, err, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func trialDump(ctx context.Context, path string) error {
	dir, err := os.MkdirTemp("", "keelson-criu-trial-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sleep := exec.Command("sleep", "60")
	sleep.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := sleep.Start(); err != nil {
		return err
	}
	defer func() { _ = sleep.Process.Kill(); _ = sleep.Wait() }()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "dump", "--tree", strconv.Itoa(sleep.Process.Pid), "--images-dir", dir, "--leave-running", "--log-file", "dump.log")
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "dump.log"))
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer in 15s")
		}
		return fmt.Errorf("%v; its log ends: %s", err, lastLines(string(log), 2))
	}
	return nil
}

func (c *Checker) find() string {
	for _, d := range c.Dirs {
		p := filepath.Join(d, "criu")
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("criu")
	return p
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
