package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"go.opentelemetry.io/otel/attribute"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/metrics"
	"github.com/keelson/keelson/pkg/tracing"
)

// IfName is the pod's interface inside its network namespace.
const IfName = "eth0"

// PortMapping is one hostPort → containerPort mapping (portmap capability).
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"` // tcp, udp, sctp
	HostIP        string `json:"hostIP,omitempty"`
}

// Pod identifies one attachment: the sandbox and what plugins are told about it.
type Pod struct {
	ID        string // sandbox ID (CNI container ID)
	NetNS     string
	Name      string
	Namespace string
	UID       string
	Ports     []PortMapping
}

// Result is what an attachment produced.
type Result struct {
	IPs []string // pod IPs on IfName, IPv4 first
	Raw []byte   // the plugins' result, as JSON
}

func (p Pod) runtimeConf() *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: p.ID,
		NetNS:       p.NetNS,
		IfName:      IfName,
		// IgnoreUnknown first: plugins that do not know the K8S_* args must not fail.
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", p.Namespace},
			{"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ID},
			{"K8S_POD_UID", p.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	if len(p.Ports) > 0 {
		rt.CapabilityArgs["portMappings"] = p.Ports
	}
	return rt
}

// Attach runs CNI ADD for the pod with the current network config. Before the
// plugins run, it records what it is about to do (Pending): if keelson dies during
// ADD, nothing else would tell a restart that an IP or a rule was taken.
func (m *Manager) Attach(ctx context.Context, pod Pod) (*Result, error) {
	network, file := m.Network()
	if network == nil {
		return nil, fmt.Errorf("pod network not ready: %v: %w", m.Status(), errdefs.ErrFailedPrecondition)
	}
	if err := m.savePending(pod, network); err != nil {
		return nil, fmt.Errorf("recording the attachment of %s: %w", pod.ID, err)
	}
	start := time.Now()
	sctx, span := tracing.Start(ctx, "cni.add", attribute.String("cni.network", network.Name), attribute.String("pod.sandbox.id", pod.ID))
	res, err := m.cni.AddNetworkList(sctx, network, pod.runtimeConf())
	tracing.End(span, err)
	metrics.ObserveCNI("add", start, err)
	if err != nil {
		return nil, fmt.Errorf("CNI ADD on network %q (%s): %w", network.Name, file, err)
	}
	return toResult(res)
}

func toResult(res cnitypes.Result) (*Result, error) {
	cur, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("converting CNI result: %w", err)
	}
	raw, _ := json.Marshal(cur)
	out := &Result{Raw: raw}
	var v4, v6 []string
	for _, ipc := range cur.IPs {
		// Only addresses on the pod's own interface (a sandbox interface) count.
		if ipc.Interface != nil && *ipc.Interface < len(cur.Interfaces) {
			iface := cur.Interfaces[*ipc.Interface]
			if iface.Sandbox == "" || iface.Name != IfName {
				continue
			}
		}
		if ipc.Address.IP.To4() != nil {
			v4 = append(v4, ipc.Address.IP.String())
		} else {
			v6 = append(v6, ipc.Address.IP.String())
		}
	}
	out.IPs = append(v4, v6...)
	if len(out.IPs) == 0 {
		return nil, errors.New("CNI ADD returned no IP address for the pod interface")
	}
	return out, nil
}

// Detach runs CNI DEL for the pod. It uses the config cached at ADD time when there
// is one, so a changed or removed conf file does not leak what ADD set up; else the
// config its pending record names; else the current one. It must run while the
// netns still exists (the bridge plugin removes its rules only then); a missing
// netns is passed as "" so plugins still release IPs and rules.
func (m *Manager) Detach(ctx context.Context, pod Pod) (retErr error) {
	ctx, span := tracing.Start(ctx, "cni.del", attribute.String("pod.sandbox.id", pod.ID))
	defer func(start time.Time) {
		tracing.End(span, retErr)
		metrics.ObserveCNI("del", start, retErr)
	}(time.Now())
	rt := pod.runtimeConf()
	if _, err := os.Stat(rt.NetNS); err != nil {
		rt.NetNS = ""
	}
	attachments, err := m.cni.GetCachedAttachments(pod.ID)
	if err != nil {
		klog.V(2).InfoS("Reading CNI cache", "podSandboxID", pod.ID, "err", err)
	}
	var errs []error
	done := false
	for _, a := range attachments {
		network, err := libcni.NetworkConfFromBytes(a.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("cached CNI config for %s: %w", pod.ID, err))
			continue
		}
		if err := m.cni.DelNetworkList(ctx, network, rt); err != nil {
			errs = append(errs, fmt.Errorf("CNI DEL on network %q: %w", network.Name, err))
			continue
		}
		done = true
	}
	if !done && len(errs) == 0 {
		// Nothing cached: ADD never completed, or the cache was lost. DEL with the
		// config ADD was given releases whatever a partial ADD took.
		network := m.pendingNetwork(pod.ID)
		if network == nil {
			network, _ = m.Network()
		}
		if network != nil {
			if err := m.cni.DelNetworkList(ctx, network, rt); err != nil {
				return fmt.Errorf("CNI DEL on network %q: %w", network.Name, err)
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	m.Forget(pod.ID)
	return nil
}

// GC removes the attachments of sandboxes that no longer exist (their IDs not in
// valid): CNI DEL with the config and args cached at ADD time. Then it sends the
// current network CNI's GC verb (spec 1.1.0) with the valid attachments, so plugins
// that implement it release what no valid attachment holds. valid must include the
// creations in flight (Pending).
func (m *Manager) GC(ctx context.Context, valid map[string]bool) {
	attachments, err := m.cni.GetCachedAttachments("")
	if err != nil {
		klog.ErrorS(err, "Listing cached CNI attachments")
		return
	}
	for _, a := range attachments {
		if valid[a.ContainerID] {
			continue
		}
		network, err := libcni.NetworkConfFromBytes(a.Config)
		if err != nil {
			klog.ErrorS(err, "Cached CNI config unreadable", "podSandboxID", a.ContainerID)
			continue
		}
		rt := &libcni.RuntimeConf{ContainerID: a.ContainerID, NetNS: a.NetNS, IfName: a.IfName, Args: a.CniArgs, CapabilityArgs: a.CapabilityArgs}
		if _, err := os.Stat(rt.NetNS); err != nil {
			rt.NetNS = ""
		}
		if err := m.cni.DelNetworkList(ctx, network, rt); err != nil {
			klog.ErrorS(err, "CNI GC: DEL of an orphaned attachment failed", "podSandboxID", a.ContainerID, "network", a.Network)
			continue
		}
		klog.InfoS("CNI GC: removed orphaned attachment", "podSandboxID", a.ContainerID, "network", a.Network)
	}
	network, _ := m.Network()
	if network == nil {
		return
	}
	args := &libcni.GCArgs{}
	for id := range valid {
		args.ValidAttachments = append(args.ValidAttachments, cnitypes.GCAttachment{ContainerID: id, IfName: IfName})
	}
	start := time.Now()
	err = m.cni.GCNetworkList(ctx, network, args)
	metrics.ObserveCNI("gc", start, err)
	if err != nil {
		klog.ErrorS(err, "CNI GC verb failed", "network", network.Name)
	}
}

// Orphans lists the cached attachments and pending records whose sandbox is not in
// valid.
func (m *Manager) Orphans(valid map[string]bool) ([]string, error) {
	attachments, err := m.cni.GetCachedAttachments("")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range attachments {
		if !valid[a.ContainerID] {
			out = append(out, fmt.Sprintf("%s on network %s (netns %s)", a.ContainerID, a.Network, a.NetNS))
		}
	}
	for _, id := range m.Pending() {
		if !valid[id] {
			out = append(out, fmt.Sprintf("%s: an ADD that never finished (pending record)", id))
		}
	}
	return out, nil
}

// IPAMDirs lists the host-local IPAM store directories of the loaded network
// (<dataDir>/<network name>), where host-local keeps one file per allocated IP.
func (m *Manager) IPAMDirs() []string {
	network, _ := m.Network()
	if network == nil {
		return nil
	}
	return ipamDirs(network)
}

func ipamDirs(network *libcni.NetworkConfigList) []string {
	var out []string
	for _, p := range network.Plugins {
		var conf struct {
			IPAM struct {
				Type    string `json:"type"`
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		}
		if json.Unmarshal(p.Bytes, &conf) != nil || conf.IPAM.Type != "host-local" {
			continue
		}
		dir := conf.IPAM.DataDir
		if dir == "" {
			dir = "/var/lib/cni/networks"
		}
		out = append(out, filepath.Join(dir, network.Name))
	}
	return out
}
