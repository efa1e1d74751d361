package daemon

import (
	"testing"

	"github.com/keelson/keelson/pkg/doctor"
)

// A finding counts once two audits in a row made it.
func TestLeakAuditCountsWhatPersists(t *testing.T) {
	var l leakAudit
	netns := doctor.Finding{Kind: "netns", What: "/run/keelson/netns/a"}
	ip := doctor.Finding{Kind: "ip", What: "10.0.0.5"}
	if _, at := l.get(); !at.IsZero() {
		t.Fatal("an audit time before any audit")
	}
	l.record([]doctor.Finding{netns})
	if counts, at := l.get(); at.IsZero() || counts["netns"] != 0 {
		t.Errorf("after one audit: %v at %v, want nothing counted yet", counts, at)
	}
	l.record([]doctor.Finding{netns, ip})
	if counts, _ := l.get(); counts["netns"] != 1 || counts["ip"] != 0 {
		t.Errorf("after two audits: %v, want the netns only", counts)
	}
	l.record([]doctor.Finding{ip})
	if counts, _ := l.get(); counts["netns"] != 0 || counts["ip"] != 1 {
		t.Errorf("after three audits: %v, want the ip only", counts)
	}
}
