package container

import (
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/containerd/v2/pkg/cio"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/crilog"
	"github.com/keelson/keelson/pkg/safefile"
)

// containerIO is the stdio keelson itself holds, for containers with a tty or stdin:
// their output goes through keelson into the CRI log (and to attached clients), and
// their stdin stays open for attach. Other containers log through keelson-logger,
// run by the shim, so their logs do not depend on keelson being up.
type containerIO struct {
	log    *crilog.Writer // nil without a log path
	stdin  io.WriteCloser // keelson's end of the container's stdin, nil without stdin
	stdinR *os.File

	writers []*io.PipeWriter // our ends of the output pipes, closed once the task is gone

	mu       sync.Mutex
	attached map[int]attachment // attach clients, by id
	next     int
	done     sync.WaitGroup

	stdinOnce sync.Once
	closed    chan struct{} // closed once close has finished
}

// attachment is one attach client's output writers (nil: not wanted).
type attachment struct {
	stdout, stderr io.Writer
}

// ioCreator decides a container's stdio for NewTask.
func (s *Service) ioCreator(c *Container) (cio.Creator, *containerIO, error) {
	cfg := c.Config
	if !cfg.GetTty() && !cfg.GetStdin() {
		if c.LogPath == "" {
			return cio.NullIO, nil, nil
		}
		// The logger makes the directory too; making it here refuses a bad one
		// before the task exists.
		dir, err := safefile.MkdirAllNoFollow(filepath.Dir(c.LogPath), 0o755)
		if err != nil {
			return nil, nil, err
		}
		dir.Close()
		u, err := crilog.LoggerURI(s.opts.LoggerBinary, c.LogPath, s.loggerPidPath(c.ID))
		if err != nil {
			return nil, nil, err
		}
		if !s.opts.LoggerV2 {
			u.Scheme = "binary" // shims before containerd 2.2 know only this one
		}
		return cio.LogURI(u), nil, nil
	}

	cio0, opts, err := s.heldIO(c)
	if err != nil {
		return nil, nil, err
	}
	return cio.NewCreator(opts...), cio0, nil
}

// heldIO builds keelson's side of a tty/stdin container's stdio: the CRI log writer,
// the stdin pipe, the output streams. Used to create the task and, after a restart,
// to attach again to the FIFOs its shim still holds.
func (s *Service) heldIO(c *Container) (*containerIO, []cio.Opt, error) {
	cfg := c.Config
	cio0 := &containerIO{attached: map[int]attachment{}, closed: make(chan struct{})}
	if c.LogPath != "" {
		w, err := crilog.NewWriter(c.LogPath)
		if err != nil {
			return nil, nil, err
		}
		cio0.log = w
	}
	var opts []cio.Opt
	var stdin io.Reader
	if cfg.GetStdin() {
		r, w, err := os.Pipe()
		if err != nil {
			cio0.close()
			return nil, nil, err
		}
		cio0.stdin, cio0.stdinR, stdin = w, r, r
	}
	stdout := cio0.stream(crilog.Stdout)
	var stderr io.Writer
	if !cfg.GetTty() {
		stderr = cio0.stream(crilog.Stderr)
	} else {
		opts = append(opts, cio.WithTerminal)
	}
	opts = append(opts, cio.WithStreams(stdin, stdout, stderr), cio.WithFIFODir(s.fifoDir()))
	return cio0, opts, nil
}

// stream returns a writer for one output stream: into the CRI log and to attached
// clients. Each stream gets its own pipe, so stdout and stderr are never mixed in one
// unsynchronized writer.
func (x *containerIO) stream(name string) io.Writer {
	pr, pw := io.Pipe()
	x.writers = append(x.writers, pw)
	x.done.Add(1)
	go func() {
		defer x.done.Done()
		tee := io.TeeReader(pr, writerFunc(func(b []byte) (int, error) { return x.broadcast(name, b) }))
		if x.log == nil {
			_, _ = io.Copy(io.Discard, tee)
			return
		}
		if err := x.log.Copy(name, tee); err != nil {
			klog.V(2).InfoS("Container log copy ended", "stream", name, "err", err)
		}
	}()
	return pw
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// broadcast copies one stream's output to attached clients; a failing client is
// dropped. Writers must not block (attach queues what it gets).
func (x *containerIO) broadcast(stream string, b []byte) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, a := range x.attached {
		w := a.stdout
		if stream == crilog.Stderr {
			w = a.stderr
		}
		if w == nil {
			continue
		}
		if _, err := w.Write(b); err != nil {
			delete(x.attached, id)
		}
	}
	return len(b), nil
}

// attach registers writers for the container's stdout and stderr (either may be
// nil) until the returned func is called. A tty container has stdout only.
func (x *containerIO) attach(stdout, stderr io.Writer) func() {
	x.mu.Lock()
	defer x.mu.Unlock()
	id := x.next
	x.next++
	x.attached[id] = attachment{stdout: stdout, stderr: stderr}
	return func() {
		x.mu.Lock()
		delete(x.attached, id)
		x.mu.Unlock()
	}
}

// closeStdin closes keelson's end of the container's stdin (stdin_once after the
// first attach): the container reads EOF once what was written is consumed.
func (x *containerIO) closeStdin() {
	x.stdinOnce.Do(func() {
		if x.stdin != nil {
			x.stdin.Close()
		}
	})
}

// close ends keelson's side of the stdio once the task is gone: what is buffered is
// still written to the log before it closes.
func (x *containerIO) close() {
	if x == nil {
		return
	}
	x.closeStdin()
	if x.stdinR != nil {
		x.stdinR.Close()
	}
	for _, w := range x.writers {
		w.Close()
	}
	x.done.Wait()
	if x.log != nil {
		x.log.Close()
	}
	if x.closed != nil {
		closeOnce(x.closed)
	}
}
