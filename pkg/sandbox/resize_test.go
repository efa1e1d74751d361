package sandbox

import (
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/cgroups"
)

func TestPodLimits(t *testing.T) {
	for _, tc := range []struct {
		name                string
		resources, overhead *runtimeapi.LinuxContainerResources
		want                cgroups.Limits
	}{
		{"none", nil, nil, cgroups.Limits{}},
		{"resources plus overhead",
			&runtimeapi.LinuxContainerResources{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 100},
			&runtimeapi.LinuxContainerResources{CpuShares: 2, CpuQuota: 10000, MemoryLimitInBytes: 10},
			cgroups.Limits{CPUShares: 514, CPUQuota: 60000, CPUPeriod: 100000, MemoryLimit: 110}},
		{"unlimited stays unlimited",
			&runtimeapi.LinuxContainerResources{CpuQuota: -1},
			&runtimeapi.LinuxContainerResources{CpuQuota: 10000, MemoryLimitInBytes: 10},
			cgroups.Limits{CPUQuota: -1}},
	} {
		if got := podLimits(tc.resources, tc.overhead); got != tc.want {
			t.Errorf("%s: podLimits = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
