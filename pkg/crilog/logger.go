package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LoggerScheme is the log URI scheme of LoggerURI. binary-v2 (containerd 2.2+ shims)
// makes task creation fail if keelson-logger dies before it is ready, instead of
// starting a container whose output has nowhere to go. keelson-logger also works
// with the older "binary" scheme, for shims that do not know binary-v2.
const LoggerScheme = "binary-v2"

// Query keys of the logger URI. The shim turns each into two arguments, key then
// value, in map order: ParseLoggerArgs takes them in any order.
const (
	argLog     = "log"
	argPidFile = "pidfile"
)

// LoggerURI is the log URI (cio.LogURI) that makes the shim run binary, the
// keelson-logger, writing the container's CRI log to logPath and its pid to pidFile.
func LoggerURI(binary, logPath, pidFile string) (*url.URL, error) {
	for _, p := range []string{binary, logPath, pidFile} {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("crilog: logger path %q is not absolute", p)
		}
	}
	q := url.Values{argLog: {logPath}, argPidFile: {pidFile}}
	return &url.URL{Scheme: LoggerScheme, Path: filepath.Clean(binary), RawQuery: q.Encode()}, nil
}

// ParseLoggerArgs reads keelson-logger's arguments, as the shim builds them from
// the URI of LoggerURI: "log <path>" and optionally "pidfile <path>", in any order.
func ParseLoggerArgs(args []string) (logPath, pidFile string, err error) {
	if len(args)%2 != 0 {
		return "", "", fmt.Errorf("arguments are not key value pairs: %q", args)
	}
	for i := 0; i < len(args); i += 2 {
		k, v := args[i], args[i+1]
		if !filepath.IsAbs(v) {
			return "", "", fmt.Errorf("%s %q is not absolute", k, v)
		}
		switch k {
		case argLog:
			logPath = v
		case argPidFile:
			pidFile = v
		default:
			return "", "", fmt.Errorf("unknown argument %q", k)
		}
	}
	if logPath == "" {
		return "", "", errors.New("no log path argument")
	}
	return logPath, pidFile, nil
}

// SignalReopen is ReopenContainerLog for a container logged by keelson-logger: it
// signals the logger found in pidFile to reopen its log and waits up to timeout
// for logPath to exist again (kubelet renamed it away before asking).
func SignalReopen(pidFile, logPath string, timeout time.Duration) error {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return fmt.Errorf("crilog: logger not running: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("crilog: bad pid file %s: %q", pidFile, b)
	}
	// A logger killed without removing its pid file leaves a pid that may be reused;
	// SIGUSR1 would kill the new owner, so make sure the pid is still our logger.
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(append([]byte{0}, cmdline...), []byte("\x00"+pidFile+"\x00")) {
		return fmt.Errorf("crilog: logger pid %d of %s is gone", pid, pidFile)
	}
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		return fmt.Errorf("crilog: signalling logger %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Lstat(logPath); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("crilog: logger %d did not reopen %s within %s", pid, logPath, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
