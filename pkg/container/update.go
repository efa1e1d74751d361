package container

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	nriapi "github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/crilog"
	"github.com/keelson/keelson/pkg/oci"
	"github.com/keelson/keelson/pkg/validate"
)

// UpdateResources applies new resources to the running task and records them in the
// container's spec and status, so a restart and ContainerStatus show them. NRI
// plugins may amend them first.
func (s *Service) UpdateResources(ctx context.Context, id string, r *runtimeapi.LinuxContainerResources) error {
	return s.updateResources(ctx, id, r, true)
}

// ApplyResources is UpdateResources for the updates NRI plugins ask for themselves:
// they are not handed back to the plugins (that could go round for ever).
func (s *Service) ApplyResources(ctx context.Context, id string, r *runtimeapi.LinuxContainerResources) error {
	return s.updateResources(ctx, id, r, false)
}

func (s *Service) updateResources(ctx context.Context, id string, r *runtimeapi.LinuxContainerResources, viaNRI bool) error {
	if r == nil {
		return fmt.Errorf("linux: no resources given: %w", errdefs.ErrInvalidArgument)
	}
	if err := validate.Resources("linux", r, s.opts.Host); err != nil {
		return err
	}
	c, err := s.Get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status.Removed() {
		return fmt.Errorf("container %s was removed: %w", c.ID, errdefs.ErrNotFound)
	}
	st := c.Status().State
	if st != StateCreated && st != StateRunning {
		return fmt.Errorf("container %s is %s: only created or running containers can be updated: %w", c.ID, st, errdefs.ErrFailedPrecondition)
	}
	if s.opts.NRI != nil && viaNRI {
		sb, err := s.sandboxes.Get(c.SandboxID)
		if err != nil {
			return err
		}
		if r, err = s.opts.NRI.UpdateContainer(ctx, sb.NRIPod(), c.NRIContainer(), r); err != nil {
			return err
		}
	}
	var spec specs.Spec
	if err := json.Unmarshal(c.Spec(), &spec); err != nil {
		return fmt.Errorf("container %s spec: %w", c.ID, err)
	}
	if err := oci.UpdateResources(namespaces.WithNamespace(ctx, s.conn.Namespace), &spec, r, s.opts.PidsLimit, s.ownOOM); err != nil {
		return err
	}
	cc, err := s.client.LoadContainer(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("loading container %s: %w", c.ID, err)
	}
	if st == StateRunning {
		task, err := cc.Task(ctx, nil)
		if err != nil {
			return fmt.Errorf("loading task of container %s: %w", c.ID, err)
		}
		if err := task.Update(ctx, containerd.WithResources(spec.Linux.Resources)); err != nil {
			return fmt.Errorf("updating resources of container %s: %w", c.ID, err)
		}
	}
	if err := cc.Update(ctx, containerd.UpdateContainerOpts(containerd.WithSpec(&spec))); err != nil {
		return fmt.Errorf("recording the new spec of container %s: %w", c.ID, err)
	}
	b, _ := proto.Marshal(r)
	specJSON, _ := json.Marshal(&spec)
	c.setSpec(specJSON)
	if err := c.status.Update(func(st *Status) bool { st.Resources = b; return true }); err != nil {
		return err
	}
	if viaNRI {
		s.nriEvent(c, func(pod *nriapi.PodSandbox, ctr *nriapi.Container) { s.opts.NRI.PostUpdateContainer(ctx, pod, ctr) })
	}
	return nil
}

// ReopenLog makes the container's logger reopen its log file after kubelet rotated it.
func (s *Service) ReopenLog(ctx context.Context, id string) error {
	c, err := s.Get(id)
	if err != nil {
		return err
	}
	if c.Status().State != StateRunning {
		return fmt.Errorf("container %s is not running: %w", c.ID, errdefs.ErrFailedPrecondition)
	}
	if c.LogPath == "" {
		return nil
	}
	c.mu.Lock()
	x := c.io
	c.mu.Unlock()
	if x != nil {
		if x.log == nil {
			return nil
		}
		return x.log.Reopen()
	}
	if err := crilog.SignalReopen(s.loggerPidPath(c.ID), c.LogPath, 10*time.Second); err != nil {
		return fmt.Errorf("reopening the log of container %s: %w", c.ID, err)
	}
	return nil
}
