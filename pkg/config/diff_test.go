package config

import (
	"slices"
	"testing"
	"time"
)

func TestChanged(t *testing.T) {
	a, b := Default(), Default()
	if got := Changed(a, b); len(got) != 0 {
		t.Fatalf("Changed(default, default) = %v", got)
	}
	b.LogLevel = 4
	b.Images.AuthFile = "/etc/keelson/auth.json"
	b.Metrics.LeakAuditInterval = Duration(time.Minute)
	b.CNI.BinDirs = append([]string{"/x"}, b.CNI.BinDirs...)
	b.Runtime.Handlers = map[string]RuntimeHandler{"runc": {}, "crun": {}}
	want := []string{"cni.bin_dirs", "images.auth_file", "log_level", "metrics.leak_audit_interval", "runtime.handlers"}
	if got := Changed(a, b); !slices.Equal(got, want) {
		t.Errorf("Changed = %v, want %v", got, want)
	}
}
