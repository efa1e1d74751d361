package cri

import (
	"context"
	"encoding/json"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/sandbox"
)

// SandboxService is what the sandbox RPCs need of pkg/sandbox.
type SandboxService interface {
	Run(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error)
	Stop(ctx context.Context, id string) error
	Remove(ctx context.Context, id string) error
	Get(id string) (*sandbox.Sandbox, error)
	List() []*sandbox.Sandbox
	UpdateResources(ctx context.Context, id string, overhead, resources *runtimeapi.LinuxContainerResources) error
}

func sandboxState(sb *sandbox.Sandbox) runtimeapi.PodSandboxState {
	if sb.Status().State == sandbox.StateReady {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

func sandboxMetadata(sb *sandbox.Sandbox) *runtimeapi.PodSandboxMetadata {
	if md := sb.Config.GetMetadata(); md != nil {
		return md
	}
	// An UNKNOWN sandbox whose config was lost: identify it by ID so kubelet can remove it.
	return &runtimeapi.PodSandboxMetadata{Name: sb.ID, Namespace: "unknown", Uid: sb.ID}
}

// matchesLabels reports whether labels contain every selector pair.
func matchesLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// sandboxVerboseInfo is PodSandboxStatus's verbose "info".
func sandboxVerboseInfo(sb *sandbox.Sandbox) map[string]string {
	st := sb.Status()
	info := map[string]any{
		"pid":            st.Pid,
		"state":          st.State,
		"reason":         st.Reason,
		"runtimeHandler": sb.RuntimeHandler,
		"runtimeType":    sb.RuntimeType,
		"image":          sb.Image,
		"netnsPath":      sb.NetNSPath,
		"infraLess":      sb.InfraLess,
		"namespaces":     map[string]string{"net": sb.NetNSPath, "ipc": sb.IPCNSPath, "uts": sb.UTSNSPath},
		"config":         sb.Config,
	}
	if spec := sb.Spec(); len(spec) > 0 {
		info["runtimeSpec"] = json.RawMessage(spec)
	}
	// The pod's resources as last resized (UpdatePodSandboxResources), else as created.
	if res, over := sb.Resources(); res != nil || over != nil {
		info["resources"], info["overhead"] = res, over
	}
	if len(sb.CNIResult) > 0 {
		info["cniResult"] = json.RawMessage(sb.CNIResult)
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil
	}
	return map[string]string{"info": string(b)}
}

func hasIDPrefix(id, prefix string) bool { return prefix == "" || strings.HasPrefix(id, prefix) }
