package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keelson/keelson/pkg/runtime"
)

// Containerd is an external containerd started for a test (not supervised by keelson).
type Containerd struct {
	Address string
	binary  string
	config  string
	logf    *os.File
	cmd     *exec.Cmd
	done    chan struct{}
}

// Pid is the containerd process id.
func (c *Containerd) Pid() int { return c.cmd.Process.Pid }

// Kill kills containerd (SIGKILL) and waits for it.
func (c *Containerd) Kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// Restart starts containerd again on the same config.
func (c *Containerd) Restart(t testing.TB) {
	t.Helper()
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
}

func (c *Containerd) start() error {
	cmd := exec.Command(c.binary, "--config", c.config)
	cmd.Stdout, cmd.Stderr = c.logf, c.logf
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(c.binary)+":"+os.Getenv("PATH"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	c.cmd, c.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(c.done)
	return nil
}

// StartContainerd starts binary with its own root, state and socket under a test dir,
// waits until it answers, and stops it when the test ends.
func StartContainerd(t testing.TB, binary string) *Containerd {
	t.Helper()
	dir := NewDir(t, "ktc-")
	major, _, err := runtime.BinaryMajorVersion(binary)
	if err != nil {
		t.Fatal(err)
	}
	child := runtime.ChildConfig{
		Root:     filepath.Join(dir, "root"),
		State:    filepath.Join(dir, "state"),
		Address:  filepath.Join(dir, "containerd.sock"),
		LogLevel: "info",
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(child.Render(major)), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{Address: child.Address, binary: binary, config: cfgPath, logf: logf}
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		logf.Close()
	})
	conn, err := runtime.Dial(context.Background(), child.Address, "keelson-test", 30*time.Second, 5*time.Second)
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
		t.Fatalf("external containerd: %v\n%s", err, b)
	}
	conn.Close()
	return c
}
