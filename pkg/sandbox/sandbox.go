// Package sandbox runs pod sandboxes: the pod's network namespace attached through
// CNI, its infra (pause) container in containerd holding the pod's namespaces, and
// the files containers of the pod share (hostname, hosts, resolv.conf, /dev/shm).
//
// Where state lives: the containerd container (label io.keelson.kind=sandbox) and its
// metadata extension are the durable record; the mutable status is a small file under
// the state dir; memory is a cache rebuilt by Load. Anything created before the
// containerd record (netns, CNI attachment, files) is found by Load's garbage
// collection if keelson dies before the record exists.
package sandbox

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/oci"
	"github.com/keelson/keelson/pkg/selinux"
	"github.com/keelson/keelson/pkg/store"
)

// Labels and extension keys on the containerd container of a sandbox.
const (
	LabelKind      = "io.keelson.kind"
	KindSandbox    = "sandbox"
	ExtensionKey   = "io.keelson.sandbox.metadata"
	labelPodName   = "io.kubernetes.pod.name"
	labelPodNS     = "io.kubernetes.pod.namespace"
	labelPodUID    = "io.kubernetes.pod.uid"
	metadataFormat = 1
)

func init() {
	typeurl.Register(&Metadata{}, "keelson.dev/sandbox", "Metadata")
}

// State of a sandbox as CRI reports it; Unknown marks a record that could not be
// loaded, kept so kubelet can still stop and remove it.
type State string

const (
	StateReady    State = "READY"
	StateNotReady State = "NOTREADY"
	StateUnknown  State = "UNKNOWN"
)

// Metadata is the sandbox's durable description, stored as the containerd container's
// extension. It does not change after creation.
type Metadata struct {
	Format         int                          `json:"format"`
	ID             string                       `json:"id"`
	Name           string                       `json:"name"` // the reserved name_namespace_uid_attempt
	Config         *runtimeapi.PodSandboxConfig `json:"-"`
	ConfigProto    []byte                       `json:"config"`
	RuntimeHandler string                       `json:"runtimeHandler"`
	RuntimeType    string                       `json:"runtimeType"`
	Image          string                       `json:"image"` // sandbox image ID
	NetNSPath      string                       `json:"netnsPath,omitempty"`
	IPs            []string                     `json:"ips,omitempty"`
	CNIResult      json.RawMessage              `json:"cniResult,omitempty"`
	Dir            string                       `json:"dir"`               // hostname, hosts, resolv.conf
	ShmPath        string                       `json:"shmPath,omitempty"` // pod /dev/shm tmpfs
	// InfraLess pods have no pause process: their IPC and UTS namespaces are pinned
	// by bind mounts at these paths (empty when the pod uses the host's).
	InfraLess bool   `json:"infraLess,omitempty"`
	IPCNSPath string `json:"ipcnsPath,omitempty"`
	UTSNSPath string `json:"utsnsPath,omitempty"`
	// UserNSPath is where the pod's own user namespace is pinned (hostUsers: false);
	// its network namespace (and an infra-less pod's IPC and UTS) belong to it.
	UserNSPath string `json:"usernsPath,omitempty"`
	// SELinux are the pod's labels (empty where SELinux is off); its MCS level is
	// reserved until the pod is removed.
	SELinux   selinux.Labels `json:"selinux,omitzero"`
	CreatedAt int64          `json:"createdAt"` // unix nanoseconds
}

// Status is the sandbox's mutable state, persisted in its status file.
type Status struct {
	State State  `json:"state"`
	Pid   uint32 `json:"pid,omitempty"`
	// NetworkDown is set once the pod's network was torn down (at stop); removal
	// then skips it.
	NetworkDown bool      `json:"networkDown,omitempty"`
	ExitedAt    time.Time `json:"exitedAt,omitzero"`
	Reason      string    `json:"reason,omitempty"` // why the state is Unknown
	// Resources and Overhead are the pod's resources as last resized
	// (UpdatePodSandboxResources), proto-encoded LinuxContainerResources; unset
	// until then (the pod's config has them).
	Resources []byte `json:"resources,omitempty"`
	Overhead  []byte `json:"overhead,omitempty"`
}

// Sandbox is one pod sandbox in memory.
type Sandbox struct {
	Metadata
	// mu is held exclusively by Stop and Remove, and shared by whoever creates or
	// starts a container in the sandbox (Hold), so neither races a teardown.
	mu     sync.RWMutex
	status *store.Status[Status]
	spec   []byte // the infra container's OCI spec (JSON), for verbose status; set once
}

// Status returns a copy of the current status.
func (sb *Sandbox) Status() Status { return sb.status.Get() }

// Spec is the infra container's OCI spec as JSON.
func (sb *Sandbox) Spec() []byte { return sb.spec }

// Hold keeps the sandbox from being stopped or removed until release is called. It
// fails, holding nothing, unless the sandbox is READY. Creating and starting a
// container hold their sandbox.
func (sb *Sandbox) Hold() (release func(), err error) {
	sb.mu.RLock()
	if sb.status.Removed() {
		sb.mu.RUnlock()
		return nil, fmt.Errorf("pod sandbox %s was removed: %w", sb.ID, errdefs.ErrNotFound)
	}
	if st := sb.Status().State; st != StateReady {
		sb.mu.RUnlock()
		return nil, fmt.Errorf("pod sandbox %s is %s, not READY: %w", sb.ID, st, errdefs.ErrFailedPrecondition)
	}
	return sb.mu.RUnlock, nil
}

// HostNetwork, HostIPC, HostPID: the pod's namespace choices.
func (sb *Sandbox) HostNetwork() bool {
	return sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE
}
func (sb *Sandbox) HostIPC() bool {
	return sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtimeapi.NamespaceMode_NODE
}
func (sb *Sandbox) HostPID() bool {
	return sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() == runtimeapi.NamespaceMode_NODE
}

// UserNS is the pod's own user namespace; nil when it uses the node's.
func (sb *Sandbox) UserNS() *oci.UserNS {
	if sb.UserNSPath == "" {
		return nil
	}
	uid, gid, ok := oci.PodUserNS(sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions())
	if !ok {
		return nil
	}
	return &oci.UserNS{Path: sb.UserNSPath, UID: uid, GID: gid}
}

// encode fills ConfigProto from Config before the metadata is stored.
func (m *Metadata) encode() error {
	b, err := proto.Marshal(m.Config)
	if err != nil {
		return err
	}
	m.ConfigProto = b
	m.Format = metadataFormat
	return nil
}

// decode fills Config from ConfigProto after the metadata is loaded.
func (m *Metadata) decode() error {
	m.Config = &runtimeapi.PodSandboxConfig{}
	return proto.Unmarshal(m.ConfigProto, m.Config)
}
