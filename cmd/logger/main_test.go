package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keelson/keelson/pkg/crilog"
)

var loggerBin string // built once by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keelson-logger")
	if err != nil {
		panic(err)
	}
	loggerBin = filepath.Join(dir, "keelson-logger")
	build := exec.Command("go", "build", "-o", loggerBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building keelson-logger:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shimLogger is the logger as the runc shim runs it, seen from the shim's side.
type shimLogger struct {
	cmd            *exec.Cmd
	stdout, stderr *os.File // the container's ends of the pipes
	diag           bytes.Buffer
	exited         chan error
}

// startLikeShim does what the runc shim's NewBinaryIO does with a log URI: the args
// come from the URI's query in map order, the environment holds only CONTAINER_ID
// and CONTAINER_NAMESPACE, fds 3 and 4 are the read ends of the stdout and stderr
// pipes, fd 5 the write end of the readiness pipe, and binary-v2 requires a byte on
// it before EOF. Unlike the shim, it keeps the logger's stderr for diagnostics.
func startLikeShim(t *testing.T, uri string) (*shimLogger, error) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for k, vs := range u.Query() {
		args = append(args, k)
		if len(vs) > 0 {
			args = append(args, vs[0])
		}
	}
	l := &shimLogger{exited: make(chan error, 1)}
	l.cmd = exec.Command(u.Path, args...)
	l.cmd.Env = append(l.cmd.Env, "CONTAINER_ID=c0ffee", "CONTAINER_NAMESPACE=k8s.io")
	l.cmd.Stderr = &l.diag
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	r, w, _ := os.Pipe()
	l.stdout, l.stderr = outW, errW
	l.cmd.ExtraFiles = []*os.File{outR, errR, w}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.cmd.Process.Kill()
		<-l.exited
	})
	go func() { l.exited <- l.cmd.Wait() }()
	w.Close()
	b := make([]byte, 1)
	n, err := r.Read(b)
	r.Close()
	// CloseAfterStart: the shim keeps only the write ends (given to the container).
	outR.Close()
	errR.Close()
	if u.Scheme == "binary-v2" && n == 0 {
		return l, fmt.Errorf("logging binary did not call ready (read: %v)", err)
	}
	return l, nil
}

// close is the shim's binaryIO.Close: close its pipe ends, SIGTERM, wait.
func (l *shimLogger) close(t *testing.T) {
	t.Helper()
	l.stdout.Close()
	l.stderr.Close()
	l.cmd.Process.Signal(syscall.SIGTERM)
	l.wait(t, 5*time.Second)
}

func (l *shimLogger) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-l.exited:
		l.exited <- err // for Cleanup
		if err != nil {
			t.Fatalf("logger: %v\n%s", err, l.diag.String())
		}
	case <-time.After(timeout):
		t.Fatalf("logger still running after %s\n%s", timeout, l.diag.String())
	}
}

func paths(t *testing.T) (logPath, pidFile, uri string) {
	dir := t.TempDir()
	logPath = filepath.Join(dir, "pods", "ns_pod_uid", "app", "0.log")
	pidFile = filepath.Join(dir, "c0ffee.pid")
	u, err := crilog.LoggerURI(loggerBin, logPath, pidFile)
	if err != nil {
		t.Fatal(err)
	}
	return logPath, pidFile, u.String()
}

func writeLines(t *testing.T, f *os.File, stream string, from, to int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s %d %s\n", stream, i, strings.Repeat("y", i%40*1000))
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

func checkLines(t *testing.T, lines []crilog.Line, from, to int) {
	t.Helper()
	next := map[string]int{crilog.Stdout: from, crilog.Stderr: from}
	for _, l := range lines {
		i := next[l.Stream]
		want := fmt.Sprintf("%s %d %s", l.Stream, i, strings.Repeat("y", i%40*1000))
		if string(l.Content) != want || l.Partial {
			t.Fatalf("%s line %d: got %.30q (%d bytes, partial %v), want %.30q (%d bytes)", l.Stream, i, l.Content, len(l.Content), l.Partial, want, len(want))
		}
		next[l.Stream]++
	}
	for s, n := range next {
		if n != to {
			t.Errorf("%s: %d lines, want %d", s, n-from, to-from)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestLoggerLikeShim(t *testing.T) {
	logPath, pidFile, uri := paths(t)
	l, err := startLikeShim(t, uri)
	if err != nil {
		t.Fatal(err)
	}
	// Ready means the log and the pid file exist: the container may start.
	if _, err := os.Stat(logPath); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatal(err)
	}

	writeLines(t, l.stdout, crilog.Stdout, 0, 100)
	writeLines(t, l.stderr, crilog.Stderr, 0, 100)
	waitFor(t, "the first lines", func() bool {
		lines, err := crilog.ReadAll(logPath)
		return err == nil && len(lines) == 200
	})

	// Kubelet's rotation: rename, then ReopenContainerLog.
	rotated := logPath + ".20240101-000000"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := crilog.SignalReopen(pidFile, logPath, 5*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, l.diag.String())
	}
	writeLines(t, l.stdout, crilog.Stdout, 100, 200)
	writeLines(t, l.stderr, crilog.Stderr, 100, 200)
	l.stdout.WriteString("no newline")
	l.close(t)

	old, err := crilog.ReadAll(rotated)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, old, 0, 100)
	cur, err := crilog.ReadAll(logPath)
	if err != nil {
		t.Fatal(err)
	}
	last := cur[len(cur)-1]
	if last.Stream != crilog.Stdout || string(last.Content) != "no newline" || !last.Partial {
		t.Errorf("last line %+v", last)
	}
	checkLines(t, cur[:len(cur)-1], 100, 200)
	if _, err := os.Stat(pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left behind: %v", err)
	}
}

// Without SIGTERM, the logger exits once both streams end.
func TestLoggerExitsAtEOF(t *testing.T) {
	logPath, _, uri := paths(t)
	l, err := startLikeShim(t, uri)
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, l.stdout, crilog.Stdout, 0, 50)
	writeLines(t, l.stderr, crilog.Stderr, 0, 50)
	l.stdout.Close()
	l.stderr.Close()
	l.wait(t, time.Second) // well before drainGrace
	lines, err := crilog.ReadAll(logPath)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, lines, 0, 50)
}

// With a TTY the runc shim never closes the stderr pipe: the logger must still exit
// after stdout ends.
func TestLoggerExitsWhenOnlyStdoutEnds(t *testing.T) {
	logPath, _, uri := paths(t)
	l, err := startLikeShim(t, uri)
	if err != nil {
		t.Fatal(err)
	}
	l.stdout.WriteString("tty output\r\n")
	l.stdout.Close()
	start := time.Now()
	l.wait(t, drainGrace+3*time.Second)
	if d := time.Since(start); d < drainGrace/2 {
		t.Errorf("exited after %s, before the grace period", d)
	}
	lines, err := crilog.ReadAll(logPath)
	if err != nil || len(lines) != 1 || string(lines[0].Content) != "tty output" {
		t.Errorf("lines %+v, %v", lines, err)
	}
}

// SIGTERM while a straggler still holds a pipe: what was written is kept and the
// logger exits well within the shim's 12 s before SIGKILL.
func TestLoggerSIGTERMWithStraggler(t *testing.T) {
	logPath, _, uri := paths(t)
	l, err := startLikeShim(t, uri)
	if err != nil {
		t.Fatal(err)
	}
	writeLines(t, l.stdout, crilog.Stdout, 0, 20)
	writeLines(t, l.stderr, crilog.Stderr, 0, 20)
	l.stdout.WriteString("half")
	l.cmd.Process.Signal(syscall.SIGTERM)
	l.wait(t, drainGrace+2*time.Second)
	lines, err := crilog.ReadAll(logPath)
	if err != nil {
		t.Fatal(err)
	}
	last := lines[len(lines)-1]
	if string(last.Content) != "half" || !last.Partial {
		t.Errorf("last line %+v", last)
	}
	checkLines(t, lines[:len(lines)-1], 0, 20)
}

// A logger that cannot start never reports ready, so binary-v2 fails the task
// instead of starting a container whose output goes nowhere.
func TestLoggerNotReadyOnError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	u, err := crilog.LoggerURI(loggerBin, filepath.Join(dir, "file", "0.log"), filepath.Join(dir, "p.pid"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := startLikeShim(t, u.String())
	if err == nil {
		t.Fatal("shim saw the logger ready")
	}
	if err := <-l.exited; err == nil {
		t.Error("logger exited 0")
	}
	l.exited <- nil
	if !strings.Contains(l.diag.String(), "keelson-logger c0ffee:") {
		t.Errorf("diagnostic %q", l.diag.String())
	}
}

func TestLoggerSize(t *testing.T) {
	fi, err := os.Stat(loggerBin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keelson-logger is %d bytes", fi.Size())
	// A guard against pulling in containerd or gRPC by accident (those are 20+ MB).
	if fi.Size() > 6<<20 {
		t.Errorf("keelson-logger is %d bytes; keep it to the standard library", fi.Size())
	}
}
