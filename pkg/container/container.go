// Package container runs the application containers of pod sandboxes on containerd
// tasks: create (spec from pkg/oci), start with logging, stop, remove, exit tracking,
// exec, resource updates.
//
// Where state lives: the containerd container (label io.keelson.kind=container,
// io.keelson.sandbox=<id>) and its metadata extension are the durable record; the
// mutable status (pid, times, exit code, reason, updated resources) is an atomically
// written file under the state dir; memory is a cache rebuilt by Load.
package container

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/store"
)

// Labels and extension keys on the containerd container.
const (
	LabelKind      = "io.keelson.kind"
	KindContainer  = "container"
	LabelSandbox   = "io.keelson.sandbox"
	ExtensionKey   = "io.keelson.container.metadata"
	metadataFormat = 1
)

func init() {
	typeurl.Register(&Metadata{}, "keelson.dev/container", "Metadata")
}

// State is a container's CRI state; Unknown marks a record that could not be loaded.
type State string

const (
	StateCreated State = "CREATED"
	StateRunning State = "RUNNING"
	StateExited  State = "EXITED"
	StateUnknown State = "UNKNOWN"
)

// Exit reasons, as kubelet and containerd's CRI report them.
const (
	ReasonCompleted  = "Completed"
	ReasonError      = "Error"
	ReasonOOMKilled  = "OOMKilled"
	ReasonStartError = "StartError"
	ReasonUnknown    = "Unknown"
)

// Metadata is the container's durable description (containerd container extension).
type Metadata struct {
	Format      int                         `json:"format"`
	ID          string                      `json:"id"`
	Name        string                      `json:"name"` // reserved name_pod_namespace_uid_attempt
	SandboxID   string                      `json:"sandboxID"`
	Config      *runtimeapi.ContainerConfig `json:"-"`
	ConfigProto []byte                      `json:"config"`
	ImageName   string                      `json:"imageName"` // as requested, e.g. busybox:1.36
	ImageID     string                      `json:"imageID"`   // sha256:<config digest>
	ImageRef    string                      `json:"imageRef"`  // repo digest when known, else the ID
	LogPath     string                      `json:"logPath,omitempty"`
	StopSignal  string                      `json:"stopSignal,omitempty"`
	CreatedAt   int64                       `json:"createdAt"`
	// RestoreFrom: the container is restored from the checkpoint extracted here.
	RestoreFrom string `json:"restoreFrom,omitempty"`
}

// Status is the container's mutable state (status file).
type Status struct {
	State      State  `json:"state"`
	Pid        uint32 `json:"pid,omitempty"`
	StartedAt  int64  `json:"startedAt,omitempty"`
	FinishedAt int64  `json:"finishedAt,omitempty"`
	ExitCode   int32  `json:"exitCode"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
	// Resources applied by UpdateContainerResources (proto bytes), if any.
	Resources []byte `json:"resources,omitempty"`
}

// Container is one container in memory.
type Container struct {
	Metadata

	// mu serializes Start, Stop, Remove and Update of this container, and guards io.
	// A stop does not hold it through the grace period.
	mu sync.Mutex

	status *store.Status[Status]
	exited chan struct{} // closed once the container has exited (or never started)
	oom    atomic.Bool   // an OOM event was seen for the current run
	// oomBase is 1 + the parent cgroup's OOM-kill count when the current run
	// started (0: unknown); a higher count at a SIGKILL exit means an OOM kill.
	oomBase atomic.Int64
	io      *containerIO // keelson-held stdio (tty/stdin containers), if any

	specMu sync.RWMutex
	spec   []byte // OCI spec JSON, for verbose status and exec; changed by updates

	userOnce sync.Once
	user     *specs.User
}

// User is the process user of the container's spec (nil if the spec is unreadable).
func (c *Container) User() *specs.User {
	c.userOnce.Do(func() {
		var spec specs.Spec
		if json.Unmarshal(c.Spec(), &spec) == nil && spec.Process != nil {
			c.user = &spec.Process.User
		}
	})
	return c.user
}

// Status returns a copy of the status.
func (c *Container) Status() Status { return c.status.Get() }

// Spec is the container's OCI spec as JSON.
func (c *Container) Spec() []byte {
	c.specMu.RLock()
	defer c.specMu.RUnlock()
	return c.spec
}

func (c *Container) setSpec(b []byte) {
	c.specMu.Lock()
	c.spec = b
	c.specMu.Unlock()
}

// Resources is the container's current resources: updated ones, else the config's.
func (c *Container) Resources() *runtimeapi.LinuxContainerResources {
	st := c.Status()
	if len(st.Resources) > 0 {
		r := &runtimeapi.LinuxContainerResources{}
		if proto.Unmarshal(st.Resources, r) == nil {
			return r
		}
	}
	return c.Config.GetLinux().GetResources()
}

func (m *Metadata) encode() error {
	b, err := proto.Marshal(m.Config)
	if err != nil {
		return err
	}
	m.ConfigProto, m.Format = b, metadataFormat
	return nil
}

func (m *Metadata) decode() error {
	m.Config = &runtimeapi.ContainerConfig{}
	return proto.Unmarshal(m.ConfigProto, m.Config)
}

func nowNano() int64 { return time.Now().UnixNano() }
