package nri

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Specs with nothing set convert without a panic.
func TestConvertSparse(t *testing.T) {
	for _, spec := range []*specs.Spec{nil, {}, {Process: &specs.Process{}, Linux: &specs.Linux{}}} {
		c := Container(&runtimeapi.ContainerConfig{}, spec, ContainerFacts{ID: "c"})
		if c.GetId() != "c" {
			t.Errorf("Container = %v", c)
		}
		p := Pod(&runtimeapi.PodSandboxConfig{}, PodFacts{ID: "p", Spec: spec})
		if p.GetId() != "p" {
			t.Errorf("Pod = %v", p)
		}
	}
	if FromCRIResources(nil) != nil {
		t.Error("FromCRIResources(nil) is not nil")
	}
	r := MergeResources(&runtimeapi.LinuxContainerResources{CpuShares: 2, MemoryLimitInBytes: 10}, FromCRIResources(&runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 20}))
	if r.MemoryLimitInBytes != 20 || r.CpuShares != 2 {
		t.Errorf("MergeResources = %v", r)
	}
	if r := MergeResources(nil, nil); r == nil {
		t.Error("MergeResources(nil, nil) is nil")
	}
}
