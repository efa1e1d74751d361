package streaming

import (
	"context"
	"fmt"
	"io"

	criapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	crstreaming "k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/keelson/keelson/pkg/container"
	"github.com/keelson/keelson/pkg/sandbox"
)

// Containers is what sessions need of pkg/container.
type Containers interface {
	Exec(ctx context.Context, id string, o container.ExecOptions) (int32, error)
	Attach(ctx context.Context, id string, o container.AttachOptions) error
}

// Sandboxes is what port forwarding needs of pkg/sandbox.
type Sandboxes interface {
	Get(id string) (*sandbox.Sandbox, error)
}

// Runtime runs sessions for k8s.io/cri-streaming.
type Runtime struct {
	Containers Containers
	Sandboxes  Sandboxes
}

var _ crstreaming.Runtime = (*Runtime)(nil)

// exitError is a non-zero exit code as the library reports it (NonZeroExitCode).
type exitError struct{ code int }

var _ utilexec.ExitError = exitError{}

func (e exitError) Error() string   { return fmt.Sprintf("command exited with code %d", e.code) }
func (e exitError) String() string  { return e.Error() }
func (e exitError) Exited() bool    { return true }
func (e exitError) ExitStatus() int { return e.code }

// Exec runs cmd in a running container with the session's streams. The process is
// killed when ctx ends: the client went away (see trackingListener).
func (r *Runtime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	o := container.ExecOptions{Cmd: cmd, Tty: tty, Resize: terminalSizes(ctx, resize)}
	stdin, stdout, stderr := wanted(ctx)
	if in != nil && stdin {
		o.Stdin = in
	}
	if out != nil && stdout {
		o.Stdout = out
	}
	if errOut != nil && stderr {
		o.Stderr = errOut
	}
	code, err := r.Containers.Exec(ctx, containerID, o)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError{code: int(code)}
	}
	return nil
}

// Attach joins a running container's main process with the session's streams.
func (r *Runtime) Attach(ctx context.Context, containerID string, in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	o := container.AttachOptions{Resize: terminalSizes(ctx, resize)}
	stdin, stdout, stderr := wanted(ctx)
	if in != nil && stdin {
		o.Stdin = in
	}
	if out != nil && stdout {
		o.Stdout = out
	}
	if errOut != nil && stderr {
		o.Stderr = errOut
	}
	return r.Containers.Attach(ctx, containerID, o)
}

// wanted reports which streams the session's request asked for. The library hands
// WebSocket sessions placeholder streams for the others (stdin reads EOF at once,
// which must not end a stdin_once container's input).
func wanted(ctx context.Context) (stdin, stdout, stderr bool) {
	switch req := requestOf(ctx).(type) {
	case *criapi.ExecRequest:
		return req.GetStdin(), req.GetStdout(), req.GetStderr()
	case *criapi.AttachRequest:
		return req.GetStdin(), req.GetStdout(), req.GetStderr()
	}
	return true, true, true
}

// terminalSizes forwards the library's resize events as (width, height) until ctx
// ends or the events end, then closes the returned channel.
func terminalSizes(ctx context.Context, in <-chan remotecommand.TerminalSize) <-chan [2]uint16 {
	if in == nil {
		return nil
	}
	out := make(chan [2]uint16)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case sz, ok := <-in:
				if !ok {
					return
				}
				if sz.Width == 0 || sz.Height == 0 {
					continue
				}
				select {
				case out <- [2]uint16{sz.Width, sz.Height}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
