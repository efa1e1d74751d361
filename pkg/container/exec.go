package container

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/store"
	"github.com/keelson/keelson/pkg/undo"
)

// MaxExecOutput caps what ExecSync keeps of stdout and stderr together: kubelet
// accepts responses up to 16 MiB, and the reply needs a little room of its own.
const MaxExecOutput = 16<<20 - 16<<10

// execDrainTimeout bounds how long output is still read after the exec process
// exited: a background child holding stdout open must not hang the call.
const execDrainTimeout = 2 * time.Second

// ExecResult is what ExecSync returns.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int32
}

// ExecSync runs cmd in a running container and returns its output and exit code.
// With timeout > 0 the process is killed when it runs longer, and the error wraps
// context.DeadlineExceeded (what kubelet's probes read as a timeout).
func (s *Service) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*ExecResult, error) {
	budget := &outputBudget{left: MaxExecOutput}
	stdout := &cappedBuffer{budget: budget}
	stderr := &cappedBuffer{budget: budget}
	code, err := s.Exec(ctx, id, ExecOptions{Cmd: cmd, Stdout: stdout, Stderr: stderr, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	return &ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: code}, nil
}

// ExecOptions describe one exec process.
type ExecOptions struct {
	Cmd     []string
	Tty     bool
	Stdin   io.Reader
	Stdout  io.Writer // separate writers: containerd copies the streams concurrently
	Stderr  io.Writer
	Timeout time.Duration
	// Resize delivers terminal sizes for a tty exec.
	Resize <-chan [2]uint16
}

// Exec runs a process in a running container until it exits, ctx ends (the process
// is killed: the client went away) or the timeout passes, and returns its exit code.
func (s *Service) Exec(ctx context.Context, id string, o ExecOptions) (int32, error) {
	if len(o.Cmd) == 0 {
		return 0, fmt.Errorf("exec: empty command: %w", errdefs.ErrInvalidArgument)
	}
	c, err := s.Get(id)
	if err != nil {
		return 0, err
	}
	if st := c.Status().State; st != StateRunning {
		return 0, fmt.Errorf("container %s is %s, not running: %w", c.ID, st, errdefs.ErrFailedPrecondition)
	}
	var spec specs.Spec
	if err := json.Unmarshal(c.Spec(), &spec); err != nil || spec.Process == nil {
		return 0, fmt.Errorf("container %s has no usable spec: %v", c.ID, err)
	}
	pspec := *spec.Process
	pspec.Args = o.Cmd
	pspec.Terminal = o.Tty
	pspec.ConsoleSize = nil

	cc, err := s.client.LoadContainer(ctx, c.ID)
	if err != nil {
		return 0, fmt.Errorf("loading container %s: %w", c.ID, err)
	}
	task, err := cc.Task(ctx, nil)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return 0, fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrFailedPrecondition)
		}
		return 0, err
	}
	stdin, stdinEOF := watchEOF(o.Stdin)
	opts := []cio.Opt{cio.WithStreams(stdin, o.Stdout, o.Stderr), cio.WithFIFODir(s.fifoDir())}
	if o.Tty {
		opts = append(opts, cio.WithTerminal)
	}
	execID := store.NewID()[:32]
	process, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(opts...))
	if err != nil {
		return 0, fmt.Errorf("exec in container %s: %w", c.ID, err)
	}
	// Deleting waits in the shim for the process's output to close (up to 10s when a
	// background child holds it), so it happens after the reply.
	defer func() {
		go func() {
			dctx, cancel := context.WithTimeout(context.Background(), undo.Timeout)
			defer cancel()
			if _, err := process.Delete(dctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				klog.V(2).InfoS("Deleting exec process", "containerID", c.ID, "execID", execID, "err", err)
			}
		}()
	}()
	waitCh, err := process.Wait(context.WithoutCancel(ctx))
	if err != nil {
		return 0, err
	}
	// Not cut short by ctx: a start cancelled mid-call may leave the process running
	// with no pid known here, which the deferred kill-and-delete would then skip.
	if err := process.Start(context.WithoutCancel(ctx)); err != nil {
		return 0, fmt.Errorf("starting exec in container %s: %w", c.ID, err)
	}
	defer closeStdinAtEOF(process, stdinEOF)()
	if o.Resize != nil {
		go func() {
			for sz := range o.Resize {
				_ = process.Resize(context.WithoutCancel(ctx), uint32(sz[0]), uint32(sz[1]))
			}
		}()
	}
	var timer <-chan time.Time
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		timer = t.C
	}
	kill := func() {
		kctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = process.Kill(kctx, syscall.SIGKILL)
		select {
		case <-waitCh:
		case <-kctx.Done():
		}
		process.IO().Cancel()
	}
	select {
	case es := <-waitCh:
		s.drain(process)
		code, _, err := es.Result()
		if err != nil {
			return 0, err
		}
		return int32(code), nil
	case <-timer:
		kill()
		return 0, fmt.Errorf("command %q timed out after %s: %w", o.Cmd, o.Timeout, context.DeadlineExceeded)
	case <-ctx.Done():
		kill()
		return 0, ctx.Err()
	}
}

// drain waits a little for the output copy to finish, then cuts it.
func (s *Service) drain(p containerd.Process) {
	done := make(chan struct{})
	go func() { p.IO().Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(execDrainTimeout):
		// Closing our ends of the FIFOs ends the copies blocked on them.
		p.IO().Cancel()
		p.IO().Close()
		<-done
	}
}

// outputBudget is the room left for exec output, shared by its streams.
type outputBudget struct {
	mu   sync.Mutex
	left int
}

// take reserves up to n bytes and returns how many were granted.
func (b *outputBudget) take(n int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, b.left)
	b.left -= n
	return n
}

// cappedBuffer keeps what its budget allows and discards the rest.
type cappedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	budget *outputBudget
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := b.budget.take(len(p)); n > 0 {
		b.buf.Write(p[:n])
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}
