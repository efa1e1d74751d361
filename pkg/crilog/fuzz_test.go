package crilog

import (
	"bytes"
	"testing"
)

// FuzzParseLine: any line a log file may hold parses or fails without a panic, and a
// line written by the Writer's format reads back as written.
func FuzzParseLine(f *testing.F) {
	f.Add([]byte("2016-10-06T00:17:09.669794202Z stdout F hello"), "stdout", []byte("hello"))
	f.Add([]byte("2016-10-06T00:17:09.669794202Z stderr P "), "stderr", []byte(""))
	f.Add([]byte("garbage"), "stdout", []byte("a b c"))
	f.Fuzz(func(t *testing.T, line []byte, stream string, content []byte) {
		_, _, _, _, _ = ParseLine(line)
		if stream != Stdout && stream != Stderr || bytes.ContainsAny(content, "\n") {
			return
		}
		rec := append([]byte("2024-01-02T03:04:05.000000006Z "+stream+" F "), content...)
		_, s, partial, c, err := ParseLine(rec)
		if err != nil || s != stream || partial || !bytes.Equal(c, content) {
			t.Fatalf("ParseLine(%q) = %q %v %q %v", rec, s, partial, c, err)
		}
	})
}
