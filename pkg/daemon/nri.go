package daemon

import (
	"context"
	"errors"
	"fmt"

	nriapi "github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/config"
	"github.com/keelson/keelson/pkg/nri"
	"github.com/keelson/keelson/pkg/sandbox"
)

// newNRI sets up the NRI plugin interface when nri.enabled (nil otherwise). It is
// started once pods and containers are loaded, so a plugin that registers is told
// of all of them.
func (d *Daemon) newNRI(cfg config.NRI) (*nri.NRI, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	return nri.New(nri.Options{
		SocketPath:          cfg.SocketPath,
		PluginPath:          cfg.PluginPath,
		PluginConfigPath:    cfg.PluginConfigPath,
		DisableConnections:  cfg.DisableConnections,
		RegistrationTimeout: cfg.PluginRegistrationTimeout.D(),
		RequestTimeout:      cfg.PluginRequestTimeout.D(),
		InjectCDI: func(spec *specs.Spec, devices []string) error {
			if d.cdi == nil {
				return errors.New("CDI is off (cdi.enabled)")
			}
			return d.cdi.Inject(spec, devices)
		},
	}, d.nriState, d.nriUpdate)
}

// nriState is every pod and container, for a plugin that registers.
func (d *Daemon) nriState(context.Context) ([]*nriapi.PodSandbox, []*nriapi.Container) {
	var pods []*nriapi.PodSandbox
	for _, sb := range d.sandboxes.List() {
		if sb.Status().State == sandbox.StateReady {
			pods = append(pods, sb.NRIPod())
		}
	}
	var ctrs []*nriapi.Container
	for _, c := range d.containers.List() {
		ctrs = append(ctrs, c.NRIContainer())
	}
	return pods, ctrs
}

// nriUpdate applies the resource updates NRI plugins ask for to containers, as an
// UpdateContainerResources would (without asking the plugins again: the adaptation
// may hold its lock while it calls this), and returns those that failed.
func (d *Daemon) nriUpdate(ctx context.Context, updates []*nriapi.ContainerUpdate) ([]*nriapi.ContainerUpdate, error) {
	var failed []*nriapi.ContainerUpdate
	var errs []error
	for _, u := range updates {
		c, err := d.containers.Get(u.GetContainerId())
		if err == nil {
			err = d.containers.ApplyResources(ctx, c.ID, nri.MergeResources(c.Resources(), u.GetLinux().GetResources()))
		}
		if err != nil {
			klog.V(2).InfoS("An NRI container update failed", "containerID", u.GetContainerId(), "err", err)
			failed = append(failed, u)
			errs = append(errs, fmt.Errorf("container %s: %w", u.GetContainerId(), err))
		}
	}
	return failed, errors.Join(errs...)
}
