package container

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/crilog"
)

const (
	// attachQueueChunks bounds what an attach client may fall behind the container's
	// output (in chunks of up to 32 KiB): a client that cannot keep up is detached
	// rather than slowing the container and its log down.
	attachQueueChunks = 256
	// attachExitGrace is how long output is still delivered after the container exited.
	attachExitGrace = 2 * time.Second
	// logPollInterval is how often a followed log file is checked for new records.
	logPollInterval = 100 * time.Millisecond
)

// AttachOptions are one attach client's streams.
type AttachOptions struct {
	Stdin  io.Reader // nil: no input; ignored for containers created without stdin
	Stdout io.Writer // nil: not wanted
	Stderr io.Writer // nil: not wanted (a tty container has none)
	// Resize delivers terminal sizes (width, height) for a tty container.
	Resize <-chan [2]uint16
}

// errAttachTooSlow ends an attach whose client does not read the output fast enough.
var errAttachTooSlow = errors.New("attach client does not keep up with the container's output; detached")

// Attach connects a client to a running container's main process until the container
// exits (the output it wrote until then is delivered) or ctx ends (the client went
// away). Containers created with a tty or stdin share keelson's live stdio: input
// goes to the container's stdin — closed when the first attach ends for stdin_once
// containers — and a tty is resized through the task. Other containers log straight
// to their CRI log file through keelson-logger; their attach follows that file from
// its current end, stdout records to Stdout and stderr records to Stderr.
func (s *Service) Attach(ctx context.Context, id string, o AttachOptions) error {
	c, err := s.Get(id)
	if err != nil {
		return err
	}
	if st := c.Status().State; st != StateRunning {
		return fmt.Errorf("container %s is %s, not running: %w", c.ID, st, errdefs.ErrFailedPrecondition)
	}
	c.mu.Lock()
	x := c.io
	c.mu.Unlock()
	if x != nil {
		return s.attachIO(ctx, c, x, o)
	}
	if c.LogPath == "" {
		return fmt.Errorf("container %s has neither keelson-held stdio nor a log file to attach to: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	return followLog(ctx, c, o)
}

// attachIO joins the live stdio keelson holds for a tty or stdin container.
func (s *Service) attachIO(ctx context.Context, c *Container, x *containerIO, o AttachOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	stdout, stderr := newQueueWriter(o.Stdout), newQueueWriter(o.Stderr)
	detach := x.attach(stdout.writer(), stderr.writer())
	stopOutput := func(flush bool) {
		detach()
		stdout.close(flush)
		stderr.close(flush)
	}

	stdinOnce := c.Config.GetStdinOnce()
	if o.Stdin != nil && x.stdin != nil {
		var once sync.Once
		closeStdin := func() {
			once.Do(func() {
				x.closeStdin()
				s.closeTaskStdin(c)
			})
		}
		go func() {
			if _, err := io.Copy(x.stdin, o.Stdin); err != nil && !errors.Is(err, os.ErrClosed) {
				klog.V(4).InfoS("Attach stdin copy ended", "containerID", c.ID, "err", err)
			}
			if stdinOnce {
				closeStdin()
			}
		}()
		if stdinOnce {
			defer closeStdin()
		}
	}
	if o.Resize != nil && c.Config.GetTty() {
		go s.resizeTask(ctx, c, o.Resize)
	}

	select {
	case <-c.exited:
		// The last output may still be on its way through the copy goroutines, which
		// end when the task is deleted and keelson's stdio closed.
		select {
		case <-x.closed:
		case <-time.After(attachExitGrace):
		case <-ctx.Done():
		}
		stopOutput(true)
		return nil
	case <-ctx.Done():
		stopOutput(false)
		return nil
	case <-stdout.failedCh():
		stopOutput(false)
		return stdout.err()
	case <-stderr.failedCh():
		stopOutput(false)
		return stderr.err()
	}
}

// closeTaskStdin makes the shim close the container's stdin. The shim holds the
// stdin FIFO open itself, so closing keelson's end alone is no EOF; what keelson
// still has queued is delivered first (the FIFO ends once every writer closed it).
func (s *Service) closeTaskStdin(c *Container) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := s.client.LoadContainer(ctx, c.ID)
	if err != nil {
		return
	}
	task, err := cc.Task(ctx, nil)
	if err != nil {
		return
	}
	if err := task.CloseIO(ctx, containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
		klog.V(2).InfoS("Closing container stdin", "containerID", c.ID, "err", err)
	}
}

// watchEOF wraps an exec's stdin to report when the client's input ended.
func watchEOF(r io.Reader) (io.Reader, <-chan struct{}) {
	if r == nil {
		return nil, nil
	}
	e := &eofReader{r: r, eof: make(chan struct{})}
	return e, e.eof
}

type eofReader struct {
	r    io.Reader
	once sync.Once
	eof  chan struct{}
}

func (e *eofReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if errors.Is(err, io.EOF) {
		e.once.Do(func() { close(e.eof) })
	}
	return n, err
}

// closeStdinAtEOF closes a started exec process's stdin in the shim once the
// client's input ended (the shim holds the FIFO open, so the process would never
// read EOF otherwise). The returned func stops waiting.
func closeStdinAtEOF(p containerd.Process, eof <-chan struct{}) (stop func()) {
	if eof == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-eof:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.CloseIO(ctx, containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
				klog.V(4).InfoS("Closing exec stdin", "execID", p.ID(), "err", err)
			}
		case <-done:
		}
	}()
	return func() { close(done) }
}

// resizeTask applies terminal sizes to the container's task until ctx ends.
func (s *Service) resizeTask(ctx context.Context, c *Container, sizes <-chan [2]uint16) {
	for {
		select {
		case <-ctx.Done():
			return
		case sz, ok := <-sizes:
			if !ok {
				return
			}
			if sz[0] == 0 || sz[1] == 0 {
				continue
			}
			cc, err := s.client.LoadContainer(ctx, c.ID)
			if err != nil {
				continue
			}
			task, err := cc.Task(ctx, nil)
			if err != nil {
				continue
			}
			if err := task.Resize(ctx, uint32(sz[0]), uint32(sz[1])); err != nil {
				klog.V(4).InfoS("Resizing container tty", "containerID", c.ID, "err", err)
			}
		}
	}
}

// queueWriter hands output to a slow consumer without blocking the producer: writes
// are queued and a goroutine delivers them. When the queue is full or a delivery
// fails, the writer fails: further writes return the error and failed is closed.
type queueWriter struct {
	w      io.Writer
	ch     chan []byte
	failed chan struct{}
	done   chan struct{}

	mu       sync.Mutex
	closed   bool
	firstErr error
}

func newQueueWriter(w io.Writer) *queueWriter {
	if w == nil {
		return nil
	}
	q := &queueWriter{w: w, ch: make(chan []byte, attachQueueChunks), failed: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q
}

// writer is q as an io.Writer, or nil for a nil q (the stream is not wanted).
func (q *queueWriter) writer() io.Writer {
	if q == nil {
		return nil
	}
	return q
}

// failedCh is closed once the writer failed; never for a nil q.
func (q *queueWriter) failedCh() <-chan struct{} {
	if q == nil {
		return nil
	}
	return q.failed
}

func (q *queueWriter) run() {
	defer close(q.done)
	for b := range q.ch {
		if q.err() != nil {
			continue // drain
		}
		if _, err := q.w.Write(b); err != nil {
			q.fail(err)
		}
	}
}

func (q *queueWriter) Write(b []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.firstErr != nil {
		return 0, q.firstErr
	}
	if q.closed {
		return 0, os.ErrClosed
	}
	select {
	case q.ch <- bytes.Clone(b):
		return len(b), nil
	default:
		q.failLocked(errAttachTooSlow)
		return 0, errAttachTooSlow
	}
}

func (q *queueWriter) fail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.failLocked(err)
}

func (q *queueWriter) failLocked(err error) {
	if q.firstErr == nil {
		q.firstErr = err
		close(q.failed)
	}
}

func (q *queueWriter) err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.firstErr
}

// close stops queueing; with flush it waits (bounded) for the queue to be delivered.
func (q *queueWriter) close(flush bool) {
	if q == nil {
		return
	}
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
	q.mu.Unlock()
	if !flush {
		q.fail(os.ErrClosed) // whatever is still queued is dropped
		return
	}
	select {
	case <-q.done:
	case <-time.After(attachExitGrace):
		q.fail(os.ErrClosed)
	}
}

// followLog streams the records a container's logger appends to its CRI log file
// from now on, until the container exited (and its last records were read) or ctx
// ends. A rotated file (renamed by kubelet, reopened by the logger) is followed to
// the new file at the same path.
func followLog(ctx context.Context, c *Container, o AttachOptions) error {
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var r *bufio.Reader
	var pending []byte // a record read only partly so far
	open := func(fromEnd bool) {
		nf, err := os.Open(c.LogPath)
		if err != nil {
			return
		}
		if fromEnd {
			if _, err := nf.Seek(0, io.SeekEnd); err != nil {
				nf.Close()
				return
			}
		}
		if f != nil {
			f.Close()
		}
		f, r, pending = nf, bufio.NewReaderSize(nf, 64<<10), nil
	}
	open(true)

	var exitedAt time.Time
	idleAfterExit := 0
	ticker := time.NewTicker(logPollInterval)
	defer ticker.Stop()
	for {
		progressed := false
		for r != nil {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				progressed = true
			}
			if err != nil {
				pending = append(pending, line...)
				break
			}
			if len(pending) > 0 {
				line = append(pending, line...)
				pending = nil
			}
			if err := writeRecord(line, o); err != nil {
				return err
			}
		}
		if !progressed && rotated(f, c.LogPath) {
			open(false) // the old file is read to its end; continue with the new one
			continue
		}
		if !exitedAt.IsZero() {
			if progressed {
				idleAfterExit = 0
			} else {
				idleAfterExit++
			}
			// The logger writes the last records just after the process exited.
			if idleAfterExit >= 3 || time.Since(exitedAt) > attachExitGrace {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.exited:
			if exitedAt.IsZero() {
				exitedAt = time.Now()
			}
			<-ticker.C
		case <-ticker.C:
		}
	}
}

// rotated reports whether path now names another file than f (or f is not open).
func rotated(f *os.File, path string) bool {
	cur, err := os.Stat(path)
	if err != nil {
		return false
	}
	if f == nil {
		return true
	}
	old, err := f.Stat()
	return err != nil || !os.SameFile(old, cur)
}

// writeRecord writes one CRI log record's content to the client's matching stream.
func writeRecord(rec []byte, o AttachOptions) error {
	_, stream, partial, content, err := crilog.ParseLine(rec)
	if err != nil {
		klog.V(4).InfoS("Skipping unparsable log record while attached", "err", err)
		return nil
	}
	w := o.Stdout
	if stream == crilog.Stderr {
		w = o.Stderr
	}
	if w == nil {
		return nil
	}
	if !partial {
		content = append(content, '\n')
	}
	_, err = w.Write(content)
	return err
}
