package crilog

import (
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shimArgs turns a log URI into the logger's path and arguments the way the runc
// shim does (process.NewBinaryCmd): it parses the URI string it was given and adds
// each query key, then its first value, in map order.
func shimArgs(t testing.TB, u *url.URL) (string, []string) {
	t.Helper()
	parsed, err := url.Parse(u.String())
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for k, vs := range parsed.Query() {
		args = append(args, k)
		if len(vs) > 0 {
			args = append(args, vs[0])
		}
	}
	return parsed.Path, args
}

func TestLoggerURIRoundTrip(t *testing.T) {
	tests := []struct{ binary, log, pid string }{
		{"/usr/local/bin/keelson-logger", "/var/log/pods/ns_pod_uid/app/0.log", "/run/keelson/loggers/abc.pid"},
		{"/opt/k b/logger", "/var/log/pods/a&b=c?d%20e #f+g/ü/0.log", "/run/x;y/p.pid"},
	}
	for _, tt := range tests {
		u, err := LoggerURI(tt.binary, tt.log, tt.pid)
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != LoggerScheme {
			t.Errorf("scheme %q", u.Scheme)
		}
		for range 10 { // map order varies
			bin, args := shimArgs(t, u)
			if bin != tt.binary {
				t.Errorf("binary %q, want %q", bin, tt.binary)
			}
			log, pid, err := ParseLoggerArgs(args)
			if err != nil || log != tt.log || pid != tt.pid {
				t.Fatalf("args %q parse to %q %q %v", args, log, pid, err)
			}
		}
	}
	for _, bad := range [][3]string{{"logger", "/a", "/b"}, {"/l", "a.log", "/b"}, {"/l", "/a", ""}} {
		if _, err := LoggerURI(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("LoggerURI%q: no error", bad)
		}
	}
}

func TestParseLoggerArgs(t *testing.T) {
	tests := []struct {
		args     []string
		log, pid string
		wantErr  string
	}{
		{args: []string{"pidfile", "/p", "log", "/l"}, log: "/l", pid: "/p"},
		{args: []string{"log", "/l"}, log: "/l"},
		{args: nil, wantErr: "no log path"},
		{args: []string{"log"}, wantErr: "pairs"},
		{args: []string{"log", "l.log"}, wantErr: "not absolute"},
		{args: []string{"log", "/l", "tag", "/x"}, wantErr: `unknown argument "tag"`},
	}
	for _, tt := range tests {
		log, pid, err := ParseLoggerArgs(tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: err = %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || log != tt.log || pid != tt.pid {
			t.Errorf("%q: %q %q %v", tt.args, log, pid, err)
		}
	}
}

// SignalReopen must not signal a pid that is no longer the logger: SIGUSR1 kills by
// default. (The happy path is tested with the real logger in cmd/logger.)
func TestSignalReopenRefusesStrangers(t *testing.T) {
	dir := t.TempDir()
	pidFile, logPath := filepath.Join(dir, "l.pid"), filepath.Join(dir, "0.log")
	if err := SignalReopen(pidFile, logPath, time.Second); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("missing pid file: %v", err)
	}
	// This test process is alive but is not a logger for pidFile; were it signalled,
	// the test binary would die.
	os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	if err := SignalReopen(pidFile, logPath, time.Second); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("stranger pid: %v", err)
	}
	os.WriteFile(pidFile, []byte("garbage"), 0o644)
	if err := SignalReopen(pidFile, logPath, time.Second); err == nil {
		t.Error("garbage pid file: no error")
	}
}
