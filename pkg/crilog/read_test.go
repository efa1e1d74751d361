package crilog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	const ts = "2016-10-06T00:17:09.669794202Z"
	tests := []struct {
		line    string
		stream  string
		partial bool
		content string
		wantErr string
	}{
		{line: ts + " stdout F hello world\n", stream: "stdout", content: "hello world"},
		{line: ts + " stderr P part", stream: "stderr", partial: true, content: "part"},
		{line: ts + " stdout F \n", stream: "stdout", content: ""},
		{line: ts + " stdout F  two  spaces \n", stream: "stdout", content: " two  spaces "},
		{line: ts + " stdout P:x:y more\n", stream: "stdout", partial: true, content: "more"},
		{line: "2016-10-06T02:17:09.6+02:00 stdout F local\n", stream: "stdout", content: "local"},
		{line: ts + " stdout F\n", wantErr: "no tag"},
		{line: ts + " stdin F a\n", wantErr: "unknown stream"},
		{line: ts + " stdout X a\n", wantErr: "unknown tag"},
		{line: "yesterday stdout F a\n", wantErr: "timestamp"},
		{line: ts + "\n", wantErr: "no timestamp"},
		{line: "", wantErr: "no timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			tm, stream, partial, content, err := ParseLine([]byte(tt.line))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if stream != tt.stream || partial != tt.partial || string(content) != tt.content {
				t.Errorf("got %s %v %q", stream, partial, content)
			}
			if tm.IsZero() {
				t.Error("zero time")
			}
		})
	}
}

func TestReadAllRejoins(t *testing.T) {
	dir := t.TempDir()
	old, cur := filepath.Join(dir, "0.log.1"), filepath.Join(dir, "0.log")
	t1 := "2024-01-01T00:00:01Z"
	os.WriteFile(old, []byte(strings.Join([]string{
		t1 + " stdout P one-",
		"2024-01-01T00:00:02Z stderr F err",
		"2024-01-01T00:00:03Z stdout P two-",
		"",
	}, "\n")), 0o644)
	os.WriteFile(cur, []byte(strings.Join([]string{
		"2024-01-01T00:00:04Z stdout F three",
		"2024-01-01T00:00:05Z stderr P cut",
		"",
	}, "\n")), 0o644)
	lines, err := ReadAll(old, cur)
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{
		{Stream: "stdout", Content: []byte("one-two-three")},
		{Stream: "stderr", Content: []byte("err")},
		{Stream: "stderr", Content: []byte("cut"), Partial: true},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines: %+v", len(lines), lines)
	}
	for i, w := range want {
		l := lines[i]
		if l.Stream != w.Stream || string(l.Content) != string(w.Content) || l.Partial != w.Partial {
			t.Errorf("line %d = %s %q partial=%v, want %s %q partial=%v", i, l.Stream, l.Content, l.Partial, w.Stream, w.Content, w.Partial)
		}
	}
	if want, _ := time.Parse(time.RFC3339, t1); !lines[0].Time.Equal(want) {
		t.Errorf("time of joined line %v, want its first part's %v", lines[0].Time, want)
	}
}

func TestReadAllErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"torn":    "2024-01-01T00:00:01Z stdout F a\n2024-01-01T00:00:01Z std",
		"garbage": "2024-01-01T00:00:01Z stdout F a\nhello\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := ReadAll(p); err == nil || !strings.Contains(err.Error(), ":2") {
			t.Errorf("%s: err = %v, want one naming line 2", name, err)
		}
	}
	if _, err := ReadAll(filepath.Join(dir, "missing")); err == nil {
		t.Error("no error for a missing file")
	}
}
