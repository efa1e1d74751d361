package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// rec is one expected record: tag and content.
type rec struct {
	tag     string
	content string
}

func x(n int) string { return strings.Repeat("x", n) }

func TestCopySplitsLikeContainerd(t *testing.T) {
	const m = MaxLineSize
	tests := []struct {
		name string
		in   string
		want []rec
	}{
		{"empty input", "", nil},
		{"short lines", "a\nbb\n\nccc\n", []rec{{"F", "a"}, {"F", "bb"}, {"F", ""}, {"F", "ccc"}}},
		{"exactly 16 KiB", x(m) + "\n", []rec{{"F", x(m)}}},
		{"16 KiB + 1", x(m+1) + "\n", []rec{{"P", x(m)}, {"F", "x"}}},
		{"32 KiB has no empty F", x(2*m) + "\n", []rec{{"P", x(m)}, {"F", x(m)}}},
		{"100 KiB", x(100*1024) + "\n", []rec{{"P", x(m)}, {"P", x(m)}, {"P", x(m)}, {"P", x(m)}, {"P", x(m)}, {"P", x(m)}, {"F", x(4096)}}},
		{"no newline at EOF is P", "a\nlast", []rec{{"F", "a"}, {"P", "last"}}},
		{"long tail at EOF is all P", x(m + 1), []rec{{"P", x(m)}, {"P", "x"}}},
		{"exactly 16 KiB at EOF", x(m), []rec{{"P", x(m)}}},
		{"CRLF ends a line", "a\r\nb\r\n", []rec{{"F", "a"}, {"F", "b"}}},
		{"only the CR before LF goes", "a\r\r\n", []rec{{"F", "a\r"}}},
		{"lone CR is content", "a\rb\n", []rec{{"F", "a\rb"}}},
		{"CR at EOF is content", "a\r", []rec{{"P", "a\r"}}},
		{"CRLF right after 16 KiB", x(m) + "\r\n", []rec{{"F", x(m)}}},
		{"CRLF after 16 KiB + 1", x(m+1) + "\r\n", []rec{{"P", x(m)}, {"F", "x"}}},
		{"CR after 16 KiB at EOF", x(m) + "\r", []rec{{"P", x(m)}, {"P", "\r"}}},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":     func(r io.Reader) io.Reader { return r },
		"half":      iotest.HalfReader,
		"chunk4095": func(r io.Reader) io.Reader { return &chunkReader{r: r, n: 4095} },
		"chunk7":    func(r io.Reader) io.Reader { return &chunkReader{r: r, n: 7} },
	}
	for _, tt := range tests {
		for rname, wrap := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "c.log")
				w, err := NewWriter(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Copy(Stdout, wrap(strings.NewReader(tt.in))); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if got := readRecords(t, path); !equalRecs(got, tt.want) {
					t.Errorf("records:\n got %s\nwant %s", show(got), show(tt.want))
				}
			})
		}
	}
}

// chunkReader returns at most n bytes per Read, like a pipe fed by small writes.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.n)])
}

func readRecords(t *testing.T, path string) []rec {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []rec
	for _, l := range bytes.SplitAfter(b, []byte{'\n'}) {
		if len(l) == 0 {
			continue
		}
		_, _, partial, content, err := ParseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		tag := "F"
		if partial {
			tag = "P"
		}
		recs = append(recs, rec{tag, string(content)})
	}
	return recs
}

func equalRecs(a, b []rec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func show(rs []rec) string {
	var s []string
	for _, r := range rs {
		c := r.content
		if len(c) > 12 {
			c = fmt.Sprintf("%.8q...(%d bytes)", c, len(c))
		} else {
			c = fmt.Sprintf("%q", c)
		}
		s = append(s, r.tag+" "+c)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func TestRecordFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pod", "c.log") // the directory is made
	w, err := NewWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := w.Copy(Stderr, strings.NewReader("hello world\n\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, _ := os.ReadFile(path)
	// An empty line still has the space after the tag: kubelet needs it.
	re := regexp.MustCompile(`^(\S+) stderr F hello world\n(\S+) stderr F \n$`)
	m := re.FindSubmatch(b)
	if m == nil {
		t.Fatalf("file is %q", b)
	}
	for _, ts := range m[1:] {
		tm, err := time.Parse(time.RFC3339Nano, string(ts))
		if err != nil || tm.Before(before.Truncate(time.Second)) || tm.After(time.Now()) {
			t.Errorf("timestamp %s: %v", ts, err)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode())
	}
}

func TestCopyRejectsUnknownStream(t *testing.T) {
	w, err := NewWriter(filepath.Join(t.TempDir(), "c.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Copy("stdin", strings.NewReader("a\n")); err == nil {
		t.Error("no error for stream stdin")
	}
}

func TestNewWriterRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "target"), nil, 0o600)
	os.Symlink(filepath.Join(dir, "target"), filepath.Join(dir, "c.log"))
	if _, err := NewWriter(filepath.Join(dir, "c.log")); err == nil {
		t.Error("opened a log through a symlink")
	}
}

// A read error, such as the logger's drain deadline, still writes what came before.
func TestCopyReadErrorFlushesPartial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := NewWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("done\nhalf"), iotest.ErrReader(boom))
	if err := w.Copy(Stdout, r); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	w.Close()
	if got, want := readRecords(t, path), []rec{{"F", "done"}, {"P", "half"}}; !equalRecs(got, want) {
		t.Errorf("got %s, want %s", show(got), show(want))
	}
}

// A failing file must not block the container: Copy drains its input and reports.
func TestCopyDrainsAfterWriteError(t *testing.T) {
	w, err := NewWriter(filepath.Join(t.TempDir(), "c.log"))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	r := strings.NewReader(strings.Repeat("line\n", 100000))
	if err := w.Copy(Stdout, r); !errors.Is(err, os.ErrClosed) {
		t.Errorf("err = %v, want os.ErrClosed", err)
	}
	if r.Len() != 0 {
		t.Errorf("%d bytes left unread", r.Len())
	}
}

// lineFor is line i of a stream in the stress tests: its length varies from empty to
// several records, and its content names it, so loss, duplication, reordering and
// mixing all show.
func lineFor(stream string, i int) string {
	n := (i * 7919) % 300
	switch {
	case i%1000 == 999:
		n = 3*MaxLineSize + i%5000
	case i%100 == 50:
		n = MaxLineSize + i%3 - 1 // around the split
	}
	head := fmt.Sprintf("%s-%d:", stream, i)
	fill := strings.Repeat(string(rune('a'+i%26)), n)
	if i%10 == 3 {
		return "" // empty lines too
	}
	return head + fill
}

// feed writes lines 0..n-1 of stream to w in uneven writes, some ending with CRLF.
func feed(w io.Writer, stream string, from, to int) error {
	var buf []byte
	for i := from; i < to; i++ {
		buf = append(buf, lineFor(stream, i)...)
		if i%4 == 0 {
			buf = append(buf, '\r')
		}
		buf = append(buf, '\n')
		if len(buf) > 1000+i%5000 || i == to-1 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	return nil
}

// checkLines verifies that lines hold exactly lines from..to-1 of each stream, in order.
func checkLines(t *testing.T, lines []Line, from, to int) {
	t.Helper()
	next := map[string]int{Stdout: from, Stderr: from}
	for _, l := range lines {
		i := next[l.Stream]
		if l.Partial {
			t.Fatalf("%s line %d is partial", l.Stream, i)
		}
		if want := lineFor(l.Stream, i); string(l.Content) != want {
			t.Fatalf("%s line %d is %.40q (%d bytes), want %.40q (%d bytes)", l.Stream, i, l.Content, len(l.Content), want, len(want))
		}
		next[l.Stream] = i + 1
	}
	for s, n := range next {
		if n != to {
			t.Errorf("%s has %d lines, want %d", s, n-from, to-from)
		}
	}
}

func TestConcurrentStreams(t *testing.T) {
	const n = 10000
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := NewWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, s := range []string{Stdout, Stderr} {
		r, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			defer pw.Close()
			if err := feed(pw, s, 0, n); err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			defer r.Close()
			if err := w.Copy(s, r); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	w.Close()
	lines, err := ReadAll(path) // every record parses: none was torn or mixed
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, lines, 0, n)
	// Records are written in time order.
	b, _ := os.ReadFile(path)
	var last time.Time
	for _, l := range bytes.SplitAfter(b, []byte{'\n'}) {
		if len(l) == 0 {
			continue
		}
		ts, _, _, content, _ := ParseLine(l)
		if ts.Before(last) {
			t.Fatalf("timestamp %v after %v", ts, last)
		}
		if len(content) > MaxLineSize {
			t.Fatalf("record of %d bytes", len(content))
		}
		last = ts
	}
}

// waitLines waits until path holds n lines per stream.
func waitLines(t *testing.T, path string, n int) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(5 * time.Millisecond) {
		lines, err := ReadAll(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) == 2*n && !lines[len(lines)-1].Partial {
			return
		}
	}
	t.Fatalf("%s never got %d lines per stream", path, n)
}

func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path, rotated := filepath.Join(dir, "0.log"), filepath.Join(dir, "0.log.20240101-000000")
	w, err := NewWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	pipes := map[string]*os.File{}
	for _, s := range []string{Stdout, Stderr} {
		r, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		pipes[s] = pw
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			if err := w.Copy(s, r); err != nil {
				t.Error(err)
			}
		}()
	}
	for s, pw := range pipes {
		feed(pw, s, 0, 500)
	}
	waitLines(t, path, 500)
	// A line in flight: its first part lands in the old file, the rest in the new.
	pipes[Stdout].Write([]byte(x(MaxLineSize + 10)))
	waitFor(t, func() bool { return bytes.Contains(readFile(t, path), []byte(" stdout P "+x(MaxLineSize)+"\n")) })
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	pipes[Stdout].Write([]byte("end\n"))
	for s, pw := range pipes {
		feed(pw, s, 500, 1000)
		pw.Close()
	}
	wg.Wait()
	w.Close()

	old, err := ReadAll(rotated)
	if err != nil {
		t.Fatal(err)
	}
	if len(old) != 1001 || !old[1000].Partial {
		t.Fatalf("old file has %d lines", len(old))
	}
	checkLines(t, old[:1000], 0, 500)
	all, err := ReadAll(rotated, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2001 || string(all[1000].Content) != x(MaxLineSize+10)+"end" {
		t.Fatalf("line across the rotation lost: %d lines", len(all))
	}
	checkLines(t, append(all[:1000:1000], all[1001:]...), 0, 1000)
}

// Rotation while both streams are busy loses and duplicates nothing.
func TestReopenUnderLoad(t *testing.T) {
	const n = 5000
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	w, err := NewWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, s := range []string{Stdout, Stderr} {
		r, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { defer wg.Done(); defer pw.Close(); feed(pw, s, 0, n) }()
		go func() {
			defer wg.Done()
			defer r.Close()
			if err := w.Copy(s, r); err != nil {
				t.Error(err)
			}
		}()
	}
	var files []string
	for i := 0; i < 5; i++ {
		time.Sleep(20 * time.Millisecond)
		rotated := fmt.Sprintf("%s.%d", path, i)
		if err := os.Rename(path, rotated); err != nil {
			t.Fatal(err)
		}
		if err := w.Reopen(); err != nil {
			t.Fatal(err)
		}
		files = append(files, rotated)
	}
	wg.Wait()
	w.Close()
	lines, err := ReadAll(append(files, path)...)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, lines, 0, n)
}

// If the new file cannot be opened, writing goes on in the old one.
func TestReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path, rotated := filepath.Join(dir, "0.log"), filepath.Join(dir, "0.log.1")
	w, err := NewWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Rename(path, rotated)
	os.Mkdir(path, 0o755) // something in the way
	if err := w.Reopen(); err == nil {
		t.Fatal("reopen onto a directory worked")
	}
	if err := w.Copy(Stdout, strings.NewReader("kept\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if got := readRecords(t, rotated); !equalRecs(got, []rec{{"F", "kept"}}) {
		t.Errorf("old file holds %s", show(got))
	}
	if err := w.Reopen(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("reopen after close: %v", err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out")
}
