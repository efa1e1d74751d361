package oci

import (
	"context"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A new memory limit keeps the swap the container was allowed on top of memory
// (none, when swap was set equal to memory), so the kernel takes it.
func TestUpdateResourcesKeepsSwapAllowance(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name           string
		old            *specs.LinuxMemory
		newLimit, swap int64
		want           *int64
	}{
		{"no swap before", &specs.LinuxMemory{Limit: i64(48)}, 64, 0, nil},
		{"swap equal to memory", &specs.LinuxMemory{Limit: i64(48), Swap: i64(48)}, 64, 0, i64(64)},
		{"some swap allowed", &specs.LinuxMemory{Limit: i64(48), Swap: i64(58)}, 64, 0, i64(74)},
		{"swap asked for", &specs.LinuxMemory{Limit: i64(48), Swap: i64(48)}, 64, 100, i64(100)},
	} {
		spec := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{Resources: &specs.LinuxResources{Memory: tc.old}}}
		r := &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: tc.newLimit, MemorySwapLimitInBytes: tc.swap}
		if err := UpdateResources(context.Background(), spec, r, 0, 0); err != nil {
			t.Fatal(err)
		}
		got := spec.Linux.Resources.Memory.Swap
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("%s: swap = %v, want %v", tc.name, got, tc.want)
		}
	}
}
