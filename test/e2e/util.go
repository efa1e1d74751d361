package e2e

import (
	"bytes"

	"github.com/keelson/keelson/pkg/crilog"
)

// containsCRILine reports whether CRI log data holds a full line on stream.
func containsCRILine(data []byte, stream, content string) bool {
	for _, l := range bytes.Split(data, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		_, s, _, c, err := crilog.ParseLine(l)
		if err == nil && s == stream && string(c) == content {
			return true
		}
	}
	return false
}
