package crilog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// ParseLine parses one record, with or without its newline. content excludes the
// newline. It is stricter than kubelet, which reads any tag but P as F: a record
// this package cannot have written is an error.
func ParseLine(line []byte) (ts time.Time, stream string, partial bool, content []byte, err error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	field := func(name string) ([]byte, error) {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("crilog: no %s in %q", name, line)
		}
		f := line[:i]
		line = line[i+1:]
		return f, nil
	}
	f, err := field("timestamp")
	if err != nil {
		return
	}
	if ts, err = time.Parse(time.RFC3339Nano, string(f)); err != nil {
		return ts, "", false, nil, fmt.Errorf("crilog: timestamp: %w", err)
	}
	if f, err = field("stream"); err != nil {
		return
	}
	stream = string(f)
	if stream != Stdout && stream != Stderr {
		return ts, "", false, nil, fmt.Errorf("crilog: unknown stream %q", stream)
	}
	if f, err = field("tag"); err != nil {
		return
	}
	// Kubelet reads only the first of ':'-separated tags; so do we.
	tag, _, _ := bytes.Cut(f, []byte{':'})
	switch string(tag) {
	case "P":
		partial = true
	case "F":
	default:
		return ts, "", false, nil, fmt.Errorf("crilog: unknown tag %q", f)
	}
	return ts, stream, partial, line, nil
}

// Line is one line of a container's output, its P parts rejoined.
type Line struct {
	Time    time.Time // of its first record
	Stream  string
	Content []byte // without the newline
	Partial bool   // the log ended before an F record finished it
}

// ReadAll reads log files in order, as one log (rotated files first), and returns
// their lines in the order they started. A line whose parts span two files is
// rejoined. Every record must parse.
func ReadAll(paths ...string) ([]Line, error) {
	var lines []Line
	open := map[string]int{} // stream -> index in lines of its unfinished line
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		r := bufio.NewReader(f)
		for n := 1; ; n++ {
			rec, err := r.ReadBytes('\n')
			if errors.Is(err, io.EOF) && len(rec) == 0 {
				break
			}
			if err != nil {
				f.Close()
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("crilog: %s:%d: record without newline", path, n)
				}
				return nil, err
			}
			ts, stream, partial, content, err := ParseLine(rec)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			i, ok := open[stream]
			if !ok {
				i = len(lines)
				lines = append(lines, Line{Time: ts, Stream: stream, Content: []byte{}})
			}
			lines[i].Content = append(lines[i].Content, content...)
			if partial {
				open[stream] = i
			} else {
				delete(open, stream)
			}
		}
		f.Close()
	}
	for _, i := range open {
		lines[i].Partial = true
	}
	return lines, nil
}
