// Command vm runs keelson's node tests in a guest VM: Debian 12 with systemd as
// PID 1 on cgroup v2, the node shape this host cannot be. It builds (once, cached)
// the guest image with image.sh, serves the test images from a registry on the
// host's loopback (10.0.2.2 from the guest), boots the guest under qemu with the
// repository and /opt/keelson shared in read-only, streams what the guest prints,
// and exits with the guest's status. The VM never outlives it.
//
//	go run ./hack/vm [--timeout 25m] [--run TestRegexp] [--keep]
//
// The guest writes a heartbeat to its serial console every 30 s. When neither the
// console nor the test output moves for stallAfter, the guest (or qemu under it) has
// stopped: the VM is killed and booted once more, saying so; a second stall fails.
//
// The binaries it shares must exist: make build, and go test -c -o bin/node.test
// ./test/node (make test-node does both).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keelson/keelson/test/registry"
)

func main() {
	prefix := envOr("KEELSON_PREFIX", "/opt/keelson")
	vmDir := flag.String("dir", filepath.Join(prefix, "vm"), "image cache and run directories")
	timeout := flag.Duration("timeout", 25*time.Minute, "the whole guest run, boot included")
	run := flag.String("run", "", "only node tests matching this regexp (go test -run)")
	keep := flag.Bool("keep", false, "keep the run directory (console log, output)")
	mem := flag.String("mem", "4G", "guest memory")
	imageOnly := flag.Bool("image", false, "only build the guest image")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := vm(ctx, config{dir: *vmDir, prefix: prefix, timeout: *timeout, run: *run, keep: *keep, mem: *mem, imageOnly: *imageOnly})
	if err != nil {
		fmt.Fprintln(os.Stderr, "vm:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

type config struct {
	dir, prefix, run, mem string
	timeout               time.Duration
	keep, imageOnly       bool
}

func vm(ctx context.Context, c config) (int, error) {
	repo, err := os.Getwd()
	if err != nil {
		return 1, err
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return 1, err
	}
	img, err := buildImage(ctx, repo, c.dir)
	if err != nil {
		return 1, err
	}
	if c.imageOnly {
		return 0, nil
	}
	for _, f := range []string{"bin/keelson", "bin/keelson-logger", "bin/node.test"} {
		if _, err := os.Stat(filepath.Join(repo, f)); err != nil {
			return 1, fmt.Errorf("%s is missing (make test-node builds it): %w", f, err)
		}
	}
	reg, err := registry.StartWithTestImages()
	if err != nil {
		return 1, fmt.Errorf("test registry: %w", err)
	}
	defer reg.Close()
	_, port, _ := strings.Cut(reg.Addr, ":")

	runDir, err := os.MkdirTemp(c.dir, "run-")
	if err != nil {
		return 1, err
	}
	if !c.keep {
		defer os.RemoveAll(runDir)
	} else {
		defer fmt.Fprintln(os.Stderr, "vm: kept", runDir)
	}
	guest, err := os.ReadFile(filepath.Join(repo, "hack/vm/guest.sh"))
	if err != nil {
		return 1, err
	}
	// The tests time out well before qemu is killed, so Go's goroutine dump and the
	// guest's diagnostics (guest.sh) reach the output.
	args := "-test.timeout " + max(c.timeout-5*time.Minute, 5*time.Minute).String()
	if c.run != "" {
		args += " -test.run " + c.run
	}
	env := fmt.Sprintf("REGISTRY=10.0.2.2:%s\nTEST_ARGS=%q\n", port, args)
	if err := os.WriteFile(filepath.Join(runDir, "run.sh"), guest, 0o755); err != nil {
		return 1, err
	}
	if err := os.WriteFile(filepath.Join(runDir, "env"), []byte(env), 0o644); err != nil {
		return 1, err
	}
	for attempt := 1; ; attempt++ {
		rc, err := boot(ctx, c, img, repo, runDir)
		if !errors.Is(err, errStalled) || attempt == 2 {
			return rc, err
		}
		fmt.Fprintf(os.Stderr, "vm: %v; booting it once more\n", err)
		for _, f := range []string{"out.log", "console.log", "qemu.log", "rc"} {
			_ = os.Remove(filepath.Join(runDir, f))
		}
	}
}

// stallAfter is how long the guest may stay silent (its console heartbeat is every
// 30 s) before it counts as stopped.
const stallAfter = 5 * time.Minute

var errStalled = errors.New("the guest stopped")

// buildImage runs image.sh, which prints the image directory last.
func buildImage(ctx context.Context, repo, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(repo, "hack/vm/image.sh"), dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the guest image: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// boot runs qemu until the guest powers off (or the timeout), streaming the guest's
// output file, and returns the guest's exit status.
func boot(ctx context.Context, c config, img, repo, runDir string) (int, error) {
	kernel := filepath.Join(img, "vmlinux")
	if _, err := os.Stat(kernel); err != nil {
		kernel = filepath.Join(img, "vmlinuz")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout+2*time.Minute)
	defer cancel()
	share := func(tag, path string, ro bool) string {
		s := fmt.Sprintf("local,path=%s,mount_tag=%s,security_model=none,id=%s", path, tag, tag)
		if ro {
			s += ",readonly=on"
		}
		return s
	}
	// TCG: the host's KVM offers only a nested mode a stock guest kernel cannot use.
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-name", "keelson-node", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", c.mem,
		"-kernel", kernel, "-initrd", filepath.Join(img, "initrd.img"),
		"-append", "root=/dev/vda rw console=ttyS0 quiet loglevel=4 net.ifnames=0 systemd.unified_cgroup_hierarchy=1 apparmor=1 security=apparmor psi=1 sysrq_always_enabled",
		"-drive", "file="+filepath.Join(img, "rootfs.img")+",format=raw,if=virtio,snapshot=on,cache=unsafe",
		"-virtfs", share("run", runDir, false),
		"-virtfs", share("repo", repo, true),
		"-virtfs", share("opt", c.prefix, true),
		"-nic", "user,model=virtio-net-pci",
		"-serial", "file:"+filepath.Join(runDir, "console.log"),
		"-monitor", "unix:"+filepath.Join(runDir, "monitor.sock")+",server,nowait",
	)
	qlog, err := os.Create(filepath.Join(runDir, "qemu.log"))
	if err != nil {
		return 1, err
	}
	defer qlog.Close()
	cmd.Stdout, cmd.Stderr = qlog, qlog
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	fmt.Fprintf(os.Stderr, "vm: booting %s (TCG, 2 CPUs, %s)\n", filepath.Base(img), c.mem)
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("qemu: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	out := filepath.Join(runDir, "out.log")
	var f *os.File
	var rd *bufio.Reader
	var qerr error
	stream := func() {
		if f == nil {
			if f, _ = os.Open(out); f == nil {
				return
			}
			rd = bufio.NewReader(f)
		}
		for {
			line, err := rd.ReadString('\n')
			if line != "" && (err == nil || errors.Is(err, io.EOF) && strings.HasSuffix(line, "\n")) {
				fmt.Print(line)
				continue
			}
			if line != "" { // a partial line: read it again once complete
				_, _ = f.Seek(-int64(len(line)), io.SeekCurrent)
				rd.Reset(f)
			}
			return
		}
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var stalled bool
	lastSize, lastMove := int64(-1), time.Now()
wait:
	for {
		select {
		case qerr = <-done:
			break wait
		case <-tick.C:
			stream()
			if n := size(out) + size(filepath.Join(runDir, "console.log")); n != lastSize {
				lastSize, lastMove = n, time.Now()
			} else if time.Since(lastMove) > stallAfter && !stalled {
				stalled = true
				diagnoseStall(filepath.Join(runDir, "monitor.sock"))
				_ = cmd.Process.Kill()
			}
		}
	}
	stream()
	if f != nil {
		f.Close()
	}
	fmt.Fprintf(os.Stderr, "vm: qemu exited after %s\n", time.Since(start).Round(time.Second))
	rc, err := os.ReadFile(filepath.Join(runDir, "rc"))
	if err != nil {
		if b, _ := os.ReadFile(filepath.Join(runDir, "qemu.log")); len(b) > 0 {
			fmt.Fprintf(os.Stderr, "vm: qemu said:\n%s", b)
		}
		console, _ := os.ReadFile(filepath.Join(runDir, "console.log"))
		lines := 40
		if stalled {
			lines = 250 // the SysRq backtraces
		}
		fmt.Fprintf(os.Stderr, "vm: the guest left no exit status (qemu: %v); console tail:\n%s\n", qerr, tail(string(console), lines))
		if stalled {
			return 125, fmt.Errorf("%w: no console heartbeat nor test output for %s", errStalled, stallAfter)
		}
		return 125, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(rc)))
	if err != nil {
		return 1, fmt.Errorf("guest exit status %q", rc)
	}
	return n, nil
}

// diagnoseStall asks a silent guest, through qemu's monitor, where its CPUs are and
// (with the magic SysRq key) for the kernel's backtraces of every CPU and of the
// blocked tasks on its console; what answers tells a hung kernel from a stuck
// userspace or a stuck qemu on the next stall.
func diagnoseStall(monitor string) {
	conn, err := net.DialTimeout("unix", monitor, 5*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vm: qemu's monitor does not answer: %v\n", err)
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	for _, cmd := range []string{"info status", "info registers -a", "sendkey alt-sysrq-l", "sendkey alt-sysrq-w"} {
		fmt.Fprintf(conn, "%s\n", cmd)
		time.Sleep(2 * time.Second)
	}
	out, _ := io.ReadAll(io.LimitReader(conn, 64<<10))
	var keep []string // the state and each CPU's instruction pointer
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "VM status") || strings.HasPrefix(l, "CPU#") || strings.HasPrefix(l, "RAX=") || strings.HasPrefix(l, "RIP=") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	fmt.Fprintf(os.Stderr, "vm: qemu's monitor on the stall:\n%s\n", strings.Join(keep, "\n"))
	time.Sleep(5 * time.Second) // for the SysRq output to reach the console
}

func size(path string) int64 {
	if fi, err := os.Stat(path); err == nil {
		return fi.Size()
	}
	return 0
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
