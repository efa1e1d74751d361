package container

import (
	"encoding/json"

	nriapi "github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/keelson/keelson/pkg/nri"
)

// nriStates are container states in NRI's terms.
var nriStates = map[State]nriapi.ContainerState{
	StateCreated: nriapi.ContainerState_CONTAINER_CREATED,
	StateRunning: nriapi.ContainerState_CONTAINER_RUNNING,
	StateExited:  nriapi.ContainerState_CONTAINER_STOPPED,
	StateUnknown: nriapi.ContainerState_CONTAINER_UNKNOWN,
}

// NRIContainer is c as NRI plugins see it, with the spec it runs with.
func (c *Container) NRIContainer() *nriapi.Container {
	var spec *specs.Spec
	_ = json.Unmarshal(c.Spec(), &spec)
	st := c.Status()
	return nri.Container(c.Config, spec, nri.ContainerFacts{
		ID: c.ID, PodID: c.SandboxID, State: nriStates[st.State], Pid: st.Pid,
		CreatedAt: c.CreatedAt, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt,
		ExitCode: st.ExitCode, Reason: st.Reason, Message: st.Message,
	})
}

// nriEvent calls one of NRI's post-event notifications for c (when NRI is on).
func (s *Service) nriEvent(c *Container, event func(pod *nriapi.PodSandbox, ctr *nriapi.Container)) {
	if s.opts.NRI == nil {
		return
	}
	sb, err := s.sandboxes.Get(c.SandboxID)
	if err != nil {
		return // the pod is gone; plugins were told with it
	}
	event(sb.NRIPod(), c.NRIContainer())
}
