package cri

import (
	"context"
	goruntime "runtime"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/cni"
	"github.com/keelson/keelson/pkg/version"
)

// Status answers from memory: containerd's last health check and the loaded CNI config.
func (s *Server) Status(ctx context.Context, r *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	ready, reason, message := s.Runtime.Health()
	runtimeCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Status: ready, Reason: reason, Message: message}
	netCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if err := s.Network.Status(); err != nil {
		netCond.Status, netCond.Reason, netCond.Message = false, cni.ReasonNotReady, err.Error()
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{runtimeCond, netCond}},
		// Merge and Strict supplemental groups policies are both implemented.
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true, MountOptions: true},
	}
	for _, h := range s.Handlers {
		features := &runtimeapi.RuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: h.RecursiveReadOnlyMounts,
			UserNamespaces:          h.UserNamespaces,
		}
		resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtimeapi.RuntimeHandler{Name: h.Name, Features: features})
		if h.Name == s.DefaultHandler {
			// kubelet looks up the default handler under the empty name.
			resp.RuntimeHandlers = append(resp.RuntimeHandlers, &runtimeapi.RuntimeHandler{Name: "", Features: features})
		}
	}
	if r.GetVerbose() {
		resp.Info = map[string]string{
			"keelsonVersion":    version.Get(),
			"containerdVersion": s.Runtime.Version(),
			"golang":            goruntime.Version(),
		}
		if s.Info != nil {
			for k, v := range s.Info() {
				resp.Info[k] = v
			}
		}
	}
	return resp, nil
}
