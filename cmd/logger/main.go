// Command keelson-logger writes one container's stdout and stderr to its CRI log
// file. The containerd shim runs it for a task whose log URI is crilog.LoggerURI, so
// it lives beside the container, not in keelson: a keelson restart loses no lines.
//
//	keelson-logger log <log path> [pidfile <pid file>]    (pairs in any order)
//
// As the shim sets it up: the container's stdout is fd 3, its stderr fd 4, and fd 5
// is the readiness pipe, written once the log is open so the container can start.
// SIGUSR1 reopens the log (kubelet rotated it); SIGTERM, sent by the shim after it
// closed its ends of the pipes, drains what is left and exits. It also exits when
// both streams reach EOF.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keelson/keelson/pkg/crilog"
)

// drainGrace bounds reading after SIGTERM or after one stream's EOF. With a TTY the
// runc shim never closes the stderr pipe it made, so stderr alone may never end.
const drainGrace = 2 * time.Second

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fail := func(err error) int {
		// The shim sends this to /dev/null; it is for people running the logger by hand.
		fmt.Fprintf(os.Stderr, "keelson-logger %s: %v\n", os.Getenv("CONTAINER_ID"), err)
		return 1
	}
	logPath, pidFile, err := crilog.ParseLoggerArgs(args)
	if err != nil {
		return fail(err)
	}
	// Before the pid file exists: SIGUSR1 would otherwise kill us.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)

	streams := []struct {
		name string
		f    *os.File
	}{{crilog.Stdout, nil}, {crilog.Stderr, nil}}
	for i := range streams {
		if streams[i].f, err = pipe(3+i, streams[i].name); err != nil {
			return fail(err)
		}
	}
	w, err := crilog.NewWriter(logPath)
	if err != nil {
		return fail(err)
	}
	defer w.Close()
	if pidFile != "" {
		if err := writePidFile(pidFile); err != nil {
			return fail(err)
		}
		defer removePidFile(pidFile)
	}
	if err := ready(); err != nil {
		return fail(err)
	}

	done := make(chan error, len(streams))
	for _, s := range streams {
		go func() { done <- w.Copy(s.name, s.f) }()
	}
	// Reading ends at most drainGrace after SIGTERM or the first stream's end; the
	// deadline is set once, never pushed back.
	draining := false
	drain := func() {
		if !draining {
			draining = true
			for _, s := range streams {
				s.f.SetReadDeadline(time.Now().Add(drainGrace))
			}
		}
	}
	status := 0
	for left := len(streams); left > 0; {
		select {
		case sig := <-sigs:
			if sig != syscall.SIGUSR1 {
				drain()
			} else if err := w.Reopen(); err != nil {
				fail(err)
			}
		case err := <-done:
			left--
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				status = fail(err)
			}
			drain()
		}
	}
	return status
}

// pipe returns inherited fd as a file with deadlines: made non-blocking, Go polls it.
func pipe(fd int, name string) (*os.File, error) {
	if err := syscall.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("container %s (fd %d): %w", name, fd, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// ready tells the shim the container may start: a byte, then EOF (binary-v2 needs the
// byte; binary takes the EOF).
func ready() error {
	f := os.NewFile(5, "wait")
	_, err := f.Write([]byte{0})
	return errors.Join(err, f.Close())
}

// writePidFile writes the pid atomically: keelson may read it at any time.
func writePidFile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// removePidFile removes the pid file unless another logger has since taken it over.
func removePidFile(path string) {
	b, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
		os.Remove(path)
	}
}
