package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/store"
)

// Supervisor runs containerd for keelson: it writes containerd's config, starts it,
// restarts it with backoff when it dies, and stops it on shutdown.
//
// Stopping containerd never stops containers: their shims are separate processes that
// outlive containerd, and the next containerd reconnects to them. containerd is not
// tied to keelson's life, though: when keelson crashes, containerd keeps running and
// the next keelson adopts it. A restarted containerd discards the shims of tasks that
// exited meanwhile, and with them their exit codes: before each start the supervisor
// reads those exits from the shims (see HarvestShimExits).
type Supervisor struct {
	Binary    string // containerd binary
	Dir       string // holds config.toml, containerd.log and containerd.pid
	Child     ChildConfig
	Namespace string // the containerd namespace whose exits are kept
	// ExitPath says where to record the exit of task id ("" to skip it); nil: none.
	ExitPath func(id string) string
	// OnExit, when set, is told each time the child exits unexpectedly.
	OnExit func(err error)

	mu       sync.Mutex
	proc     *os.Process
	stopping bool
	exited   chan struct{} // closed when the current child has been waited for
	done     chan struct{} // closed when the supervision loop ends
	version  string
	restarts int
}

const (
	minBackoff  = 500 * time.Millisecond
	maxBackoff  = 30 * time.Second
	healthyRun  = time.Minute // a child that ran this long resets the backoff
	stopTimeout = 15 * time.Second
)

// ConfigPath is where the supervisor writes containerd's config.
func (s *Supervisor) ConfigPath() string { return filepath.Join(s.Dir, "config.toml") }

// LogPath is where the child's stdout and stderr go.
func (s *Supervisor) LogPath() string { return filepath.Join(s.Dir, "containerd.log") }

func (s *Supervisor) pidPath() string { return filepath.Join(s.Dir, "containerd.pid") }

// Start writes the config and starts containerd; it returns once the process runs
// (not once it answers: the caller dials the socket for that). Supervision goes on
// until Stop.
func (s *Supervisor) Start() error {
	major, version, err := BinaryMajorVersion(s.Binary)
	if err != nil {
		return err
	}
	s.version = version
	for _, d := range []string{s.Dir, s.Child.Root, s.Child.State, filepath.Dir(s.Child.Address)} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	config := []byte(s.Child.Render(major))
	previous, _ := os.ReadFile(s.ConfigPath())
	if err := store.WriteFileAtomic(s.ConfigPath(), config, 0o600); err != nil {
		return fmt.Errorf("writing containerd config: %w", err)
	}
	s.done = make(chan struct{})
	if !s.adopt(previous, config) {
		if err := s.spawn(); err != nil {
			close(s.done)
			return err
		}
	}
	go s.supervise()
	return nil
}

// Version is the version string the binary reported.
func (s *Supervisor) Version() string { return s.version }

// Pid is the running child's pid, or 0.
func (s *Supervisor) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid
}

// leftover returns the pid of a containerd an earlier keelson started on this config
// that still runs, or 0.
func (s *Supervisor) leftover() int {
	b, err := os.ReadFile(s.pidPath())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), s.ConfigPath()) || !alive(pid) {
		return 0
	}
	return pid
}

// adopt takes over a containerd left running by an earlier keelson (which crashed)
// when it runs the same config; one with another config is stopped, since two
// containerds on one root would fight over its database.
func (s *Supervisor) adopt(previous, config []byte) bool {
	pid := s.leftover()
	if pid == 0 {
		return false
	}
	if !bytes.Equal(previous, config) {
		klog.InfoS("Stopping the containerd an earlier keelson left running: its config changed", "pid", pid)
		_ = syscall.Kill(pid, syscall.SIGTERM)
		if !waitGone(pid, stopTimeout) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, stopTimeout)
		}
		return false
	}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for alive(pid) {
			time.Sleep(200 * time.Millisecond)
		}
		if !s.isStopping() {
			klog.ErrorS(nil, "Adopted containerd exited", "pid", pid, "log", s.LogPath())
			if s.OnExit != nil {
				s.OnExit(fmt.Errorf("containerd (pid %d) exited", pid))
			}
		}
		s.mu.Lock()
		s.proc = nil
		s.mu.Unlock()
	}()
	proc, _ := os.FindProcess(pid)
	s.mu.Lock()
	s.proc, s.exited = proc, exited
	s.mu.Unlock()
	klog.InfoS("Adopted the containerd an earlier keelson left running", "pid", pid, "config", s.ConfigPath())
	return true
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func waitGone(pid int, timeout time.Duration) bool {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if !alive(pid) {
			return true
		}
	}
	return false
}

// spawn starts one child, in its own process group so a Ctrl-C meant for keelson does
// not reach it: keelson stops it in order.
func (s *Supervisor) spawn() error {
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if s.ExitPath != nil {
		HarvestShimExits(s.Child.State, s.Namespace, s.ExitPath)
	}
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer logf.Close()
		cmd := exec.Command(s.Binary, "--config", s.ConfigPath())
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Env = childEnv(filepath.Dir(s.Binary))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("starting %s: %w", s.Binary, err)
			return
		}
		s.mu.Lock()
		s.proc = cmd.Process
		s.mu.Unlock()
		_ = store.WriteFileAtomic(s.pidPath(), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
		started <- nil
		err := cmd.Wait()
		s.mu.Lock()
		s.proc = nil
		stopping := s.stopping
		s.mu.Unlock()
		if !stopping {
			klog.ErrorS(err, "Supervised containerd exited", "pid", cmd.Process.Pid, "log", s.LogPath())
			if s.OnExit != nil {
				s.OnExit(fmt.Errorf("containerd (pid %d) exited: %v", cmd.Process.Pid, err))
			}
		}
	}()
	if err := <-started; err != nil {
		return err
	}
	s.mu.Lock()
	s.exited = exited
	s.mu.Unlock()
	klog.InfoS("Started supervised containerd", "pid", s.Pid(), "version", s.version, "config", s.ConfigPath(), "log", s.LogPath())
	return nil
}

// supervise restarts the child each time it exits, with exponential backoff, until Stop.
func (s *Supervisor) supervise() {
	defer close(s.done)
	backoff := minBackoff
	for {
		s.mu.Lock()
		exited := s.exited
		s.mu.Unlock()
		began := time.Now()
		<-exited
		if s.isStopping() {
			return
		}
		if time.Since(began) > healthyRun {
			backoff = minBackoff
		}
		klog.InfoS("Restarting supervised containerd", "after", backoff)
		// Sleep in small steps so Stop is not held up by a long backoff.
		for end := time.Now().Add(backoff); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if s.isStopping() {
				return
			}
		}
		backoff = min(backoff*2, maxBackoff)
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
		if err := s.spawn(); err != nil {
			klog.ErrorS(err, "Restarting supervised containerd failed")
			// Try again after the next backoff.
			s.mu.Lock()
			ch := make(chan struct{})
			close(ch)
			s.exited = ch
			s.mu.Unlock()
		}
	}
}

func (s *Supervisor) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// Restarts is how many times the child was restarted.
func (s *Supervisor) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// Stop ends supervision and stops containerd: SIGTERM, then SIGKILL after a timeout.
// Containers keep running in their shims.
func (s *Supervisor) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	proc, exited := s.proc, s.exited
	s.mu.Unlock()
	if s.done == nil {
		return nil
	}
	if proc != nil {
		_ = proc.Signal(syscall.SIGTERM)
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-exited:
		case <-timer.C:
			klog.InfoS("containerd did not stop in time; killing it", "pid", proc.Pid, "timeout", stopTimeout)
			_ = proc.Kill()
			<-exited
		case <-ctx.Done():
			_ = proc.Kill()
			<-exited
		}
	}
	<-s.done
	if err := os.Remove(s.pidPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	klog.InfoS("Supervised containerd stopped")
	return nil
}

// systemdOnly are the variables systemd sets for the service's main process.
var systemdOnly = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}

// childEnv is keelson's environment with binDir first on PATH, so containerd finds
// the shim built with it, and without what systemd gave keelson alone: containerd
// would otherwise notify systemd and answer keelson's watchdog as if it were keelson.
func childEnv(binDir string) []string {
	env := make([]string, 0, len(os.Environ())+1)
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
			continue
		}
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(systemdOnly, name) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+binDir+string(os.PathListSeparator)+path)
}
