package doctor

import (
	"strings"
	"testing"
)

func TestScopeID(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for _, c := range []struct {
		name, id string
		scope    bool
	}{
		{id, id, false},
		{"keelson-" + id + ".scope", id, true},
		{"cri-containerd-" + id + ".scope", "cri-containerd-" + id + ".scope", false},
		{"keelson-" + id, "keelson-" + id, false},
		{"kubepods-besteffort.slice", "kubepods-besteffort.slice", false},
	} {
		if got, scope := scopeID(c.name); got != c.id || scope != c.scope {
			t.Errorf("scopeID(%q) = %q %v, want %q %v", c.name, got, scope, c.id, c.scope)
		}
	}
}
