// Package crilog writes and reads kubelet's CRI container log format:
//
//	<RFC3339Nano time> <stdout|stderr> <F|P> <content>\n
//
// F ends a line; P is a part of a longer line (or the unterminated tail of a stream)
// whose content continues in the next record of the same stream. The writer runs in
// keelson-logger (cmd/logger), a child of the containerd shim, so container logs keep
// flowing while keelson restarts.
package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/keelson/keelson/pkg/safefile"
	"time"
)

// MaxLineSize is the longest content of one record. Longer lines are split into P
// records of exactly this size and a final F record: containerd's default
// max_container_log_line_size, which log shippers expect.
const MaxLineSize = 16 * 1024

// The two streams of a container log.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

const (
	readSize  = 2 * MaxLineSize // room for a pending line part plus one more read
	batchSize = 64 * 1024       // flush records to the file once this much is queued
)

// Writer appends CRI log records to one file. Copy may run concurrently for stdout
// and stderr; records are never interleaved because every write holds mu.
type Writer struct {
	path string

	mu  sync.Mutex
	f   *os.File // nil once closed
	rec []byte   // records being built, guarded by mu
}

// NewWriter opens (creating or appending to) the log file at path.
func NewWriter(path string) (*Writer, error) {
	f, err := openLog(path)
	if err != nil {
		return nil, err
	}
	return &Writer{path: path, f: f}, nil
}

// openLog opens path for appending: the pod log directory is made if kubelet has not
// yet, and a symbolic link anywhere on the path — planted at the file or at one of
// its directories — is refused, since the writer runs as root.
func openLog(path string) (*os.File, error) {
	dir, err := safefile.MkdirAllNoFollow(filepath.Dir(path), 0o755)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return safefile.OpenAppend(dir, filepath.Base(path), 0o640)
}

// Reopen opens the file at the writer's path again and switches to it: kubelet rotates
// a log by renaming it and then asking for a reopen. Records already written stay in
// the renamed file. On error the writer keeps the old file, so nothing is lost.
func (w *Writer) Reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return os.ErrClosed
	}
	f, err := openLog(w.path)
	if err != nil {
		return err
	}
	old := w.f
	w.f = f
	return old.Close()
}

// Close closes the file. Copies still running then fail to write, but keep draining.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return os.ErrClosed
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// Copy reads r until EOF or a read error and writes it as records of stream. CR LF
// ends a line like LF does (kubelet does not strip CR); a last line without a newline
// is written as a P record. A write error does not stop the copy, as the container
// would block on a full pipe: the first one is returned when r ends. A read error,
// such as an expired deadline, is returned after writing what was read before it.
func (w *Writer) Copy(stream string, r io.Reader) error {
	if stream != Stdout && stream != Stderr {
		return fmt.Errorf("crilog: unknown stream %q", stream)
	}
	s := splitter{w: w, stream: stream}
	buf := make([]byte, readSize)
	start, end := 0, 0 // buf[start:end] is the start of a line not yet written
	for {
		n, rerr := r.Read(buf[end:])
		end += n
		start = s.lines(buf, start, end)
		if rerr != nil {
			// The stream ended inside a line: write its rest as P records.
			for start < end {
				n := min(end-start, MaxLineSize)
				s.add(tagPartial, buf[start:start+n])
				start += n
			}
			s.flush()
			if rerr == io.EOF {
				return s.err
			}
			return errors.Join(rerr, s.err)
		}
		if n > 0 {
			s.flush()
		}
		end = copy(buf, buf[start:end])
		start = 0
	}
}

const (
	tagFull    = 'F'
	tagPartial = 'P'
)

// splitter turns one stream's bytes into records; the records of one read are
// written together, so a chatty container costs one write per read, not per line.
type splitter struct {
	w      *Writer
	stream string
	queued []record // to write; contents alias the read buffer
	err    error    // first write error
}

type record struct {
	tag     byte
	content []byte
}

// lines queues every complete line of buf[start:end], then P parts of a pending line
// longer than MaxLineSize, and returns where the unwritten rest begins.
func (s *splitter) lines(buf []byte, start, end int) int {
	for {
		i := bytes.IndexByte(buf[start:end], '\n')
		if i < 0 {
			break
		}
		line := buf[start : start+i]
		line = bytes.TrimSuffix(line, []byte{'\r'})
		for len(line) > MaxLineSize {
			s.add(tagPartial, line[:MaxLineSize])
			line = line[MaxLineSize:]
		}
		s.add(tagFull, line)
		start += i + 1
	}
	// A trailing CR may be half of a CR LF, so it does not count toward the length:
	// the line is only split if it is longer than MaxLineSize without it.
	for {
		n := end - start
		if n > 0 && buf[end-1] == '\r' {
			n--
		}
		if n <= MaxLineSize {
			return start
		}
		s.add(tagPartial, buf[start:start+MaxLineSize])
		start += MaxLineSize
	}
}

func (s *splitter) add(tag byte, content []byte) {
	s.queued = append(s.queued, record{tag, content})
}

// flush writes the queued records, stamping them under the lock so the file is in
// time order. It runs before the read buffer is reused.
func (s *splitter) flush() {
	if len(s.queued) == 0 {
		return
	}
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, q := range s.queued {
		rec := time.Now().AppendFormat(w.rec, time.RFC3339Nano)
		rec = append(rec, ' ')
		rec = append(rec, s.stream...)
		rec = append(rec, ' ', q.tag, ' ')
		rec = append(rec, q.content...)
		w.rec = append(rec, '\n')
		if len(w.rec) >= batchSize {
			s.write()
		}
	}
	s.write()
	s.queued = s.queued[:0]
}

// write sends w.rec to the file in one call; w.mu is held.
func (s *splitter) write() {
	w := s.w
	if len(w.rec) == 0 {
		return
	}
	var err error
	if w.f == nil {
		err = os.ErrClosed
	} else {
		_, err = w.f.Write(w.rec)
	}
	if err != nil && s.err == nil {
		s.err = fmt.Errorf("crilog: writing %s of %s: %w", s.stream, w.path, err)
	}
	w.rec = w.rec[:0]
}
