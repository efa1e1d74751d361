package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/selinux"
)

const (
	testPasswd = `root:x:0:0:root:/root:/bin/sh
web:x:33:33:www:/var/www:/usr/sbin/nologin
app:x:1000:1000::/home/app:/bin/sh
`
	testGroup = `root:x:0:
audio:x:29:app,web
www-data:x:33:
video:x:44:app
staff:x:50:
app:x:1000:
`
)

// fakeFiles serves files from a map, absent ones as os.ErrNotExist.
func fakeFiles(files map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
	}
}

// fakePropagation answers from a map of host path -> "shared", "slave" or "private".
func fakePropagation(m map[string]string) func(string) (bool, bool, error) {
	return func(p string) (bool, bool, error) {
		switch m[p] {
		case "shared":
			return true, false, nil
		case "slave":
			return false, true, nil
		case "private":
			return false, false, nil
		}
		return false, false, fmt.Errorf("no mount for %s", p)
	}
}

func testInput() ContainerInput {
	return ContainerInput{
		ID: "c1",
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
			Linux: &runtimeapi.LinuxContainerConfig{
				SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
				},
			},
		},
		SandboxConfig: &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "pod", Namespace: "default", Uid: "pod-uid"},
			Hostname: "pod-host",
		},
		Image: ocispec.ImageConfig{
			Entrypoint: []string{"/bin/app"},
			Cmd:        []string{"--serve"},
			Env:        []string{"PATH=/opt/bin:/bin", "A=image", "B=image"},
		},
		ImageName: "docker.io/library/app:1",
		Sandbox: SandboxFacts{
			ID:             "sb1",
			Pid:            42,
			NetNSPath:      "/var/run/netns/cni-1",
			Hostname:       "pod-host",
			HostnamePath:   "/run/keelson/sb1/hostname",
			HostsPath:      "/run/keelson/sb1/hosts",
			ResolvConfPath: "/run/keelson/sb1/resolv.conf",
			ShmPath:        "/run/keelson/sb1/shm",
			CgroupParent:   "/kubepods/pod1",
		},
		ReadImageFile: fakeFiles(map[string]string{"/etc/passwd": testPasswd, "/etc/group": testGroup}),
		ReadHostFile: fakeFiles(map[string]string{
			"/var/lib/kubelet/seccomp/log.json": `{"defaultAction":"SCMP_ACT_LOG"}`,
		}),
		MountPropagation: fakePropagation(map[string]string{
			"/mnt/shared": "shared", "/mnt/slave": "slave", "/mnt/private": "private",
		}),
		HostDevices: func() ([]specs.LinuxDevice, error) {
			return []specs.LinuxDevice{{Path: "/dev/fake0", Type: "c", Major: 240, Minor: 1}}, nil
		},
	}
}

// sc returns the test input's security context, for cases to fill in.
func sc(in *ContainerInput) *runtimeapi.LinuxContainerSecurityContext {
	return in.Config.Linux.SecurityContext
}

func res(in *ContainerInput) *runtimeapi.LinuxContainerResources {
	if in.Config.Linux.Resources == nil {
		in.Config.Linux.Resources = &runtimeapi.LinuxContainerResources{}
	}
	return in.Config.Linux.Resources
}

func findNS(s *specs.Spec, t specs.LinuxNamespaceType) (specs.LinuxNamespace, bool) {
	for _, n := range s.Linux.Namespaces {
		if n.Type == t {
			return n, true
		}
	}
	return specs.LinuxNamespace{}, false
}

func findMount(s *specs.Spec, dst string) (specs.Mount, int) {
	for i, m := range s.Mounts {
		if m.Destination == dst {
			return m, i
		}
	}
	return specs.Mount{}, -1
}

func countMounts(s *specs.Spec, dst string) int {
	n := 0
	for _, m := range s.Mounts {
		if m.Destination == dst {
			n++
		}
	}
	return n
}

func envOf(s *specs.Spec, key string) (string, bool) {
	for _, e := range s.Process.Env {
		if k, v, _ := strings.Cut(e, "="); k == key {
			return v, true
		}
	}
	return "", false
}

// errAny as a case's wantErr accepts an error of any kind (one carrying no errdefs kind).
var errAny = errors.New("any error")

type specCase struct {
	name    string
	mod     func(*ContainerInput)
	wantErr error  // an errdefs kind
	errHas  string // a part of the message
	check   func(*testing.T, *specs.Spec)
}

func runSpecCases(t *testing.T, cases []specCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput()
			if tc.mod != nil {
				tc.mod(&in)
			}
			spec, err := ContainerSpec(context.Background(), in)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("want a %v error, got none", tc.wantErr)
				}
				if tc.wantErr != errAny && !errors.Is(err, tc.wantErr) {
					t.Fatalf("want a %v error, got %v", tc.wantErr, err)
				}
				if tc.errHas != "" && !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %q does not mention %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("ContainerSpec: %v", err)
			}
			if tc.check != nil {
				tc.check(t, spec)
			}
		})
	}
}

func wantArgs(want ...string) func(*testing.T, *specs.Spec) {
	return func(t *testing.T, s *specs.Spec) {
		if !slices.Equal(s.Process.Args, want) {
			t.Fatalf("args = %q, want %q", s.Process.Args, want)
		}
	}
}

func TestContainerArgs(t *testing.T) {
	runSpecCases(t, []specCase{
		{name: "image entrypoint and cmd", check: wantArgs("/bin/app", "--serve")},
		{
			name:  "CRI command replaces entrypoint and cmd",
			mod:   func(in *ContainerInput) { in.Config.Command = []string{"/bin/sh"} },
			check: wantArgs("/bin/sh"),
		},
		{
			name: "CRI command and args",
			mod: func(in *ContainerInput) {
				in.Config.Command = []string{"/bin/sh"}
				in.Config.Args = []string{"-c", "true"}
			},
			check: wantArgs("/bin/sh", "-c", "true"),
		},
		{
			name:  "CRI args replace only cmd",
			mod:   func(in *ContainerInput) { in.Config.Args = []string{"--debug"} },
			check: wantArgs("/bin/app", "--debug"),
		},
		{
			name:  "image without entrypoint",
			mod:   func(in *ContainerInput) { in.Image.Entrypoint = nil; in.Image.Cmd = []string{"nginx", "-g"} },
			check: wantArgs("nginx", "-g"),
		},
		{
			name:  "reset entrypoint [\"\"]",
			mod:   func(in *ContainerInput) { in.Image.Entrypoint = []string{""}; in.Image.Cmd = []string{"sh"} },
			check: wantArgs("sh"),
		},
		{
			name:    "no command anywhere",
			mod:     func(in *ContainerInput) { in.Image.Entrypoint = nil; in.Image.Cmd = nil },
			wantErr: errdefs.ErrInvalidArgument, errHas: "no command specified",
		},
		{
			name:    "nil config",
			mod:     func(in *ContainerInput) { in.Config = nil },
			wantErr: errdefs.ErrInvalidArgument,
		},
	})
}

func TestContainerEnvCwdTTY(t *testing.T) {
	runSpecCases(t, []specCase{
		{
			name: "CRI env overrides image env",
			mod: func(in *ContainerInput) {
				in.Config.Envs = []*runtimeapi.KeyValue{{Key: "B", Value: []byte("cri")}, {Key: "C", Value: []byte("x=y")}}
			},
			check: func(t *testing.T, s *specs.Spec) {
				for k, want := range map[string]string{"A": "image", "B": "cri", "C": "x=y", "PATH": "/opt/bin:/bin", "HOSTNAME": "pod-host"} {
					if v, _ := envOf(s, k); v != want {
						t.Errorf("%s = %q, want %q (env %q)", k, v, want, s.Process.Env)
					}
				}
				n := 0
				for _, e := range s.Process.Env {
					if strings.HasPrefix(e, "B=") {
						n++
					}
				}
				if n != 1 {
					t.Errorf("B appears %d times in %q", n, s.Process.Env)
				}
			},
		},
		{
			name: "HOSTNAME from the CRI config wins",
			mod: func(in *ContainerInput) {
				in.Config.Envs = []*runtimeapi.KeyValue{{Key: "HOSTNAME", Value: []byte("mine")}}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if v, _ := envOf(s, "HOSTNAME"); v != "mine" {
					t.Fatalf("HOSTNAME = %q", v)
				}
			},
		},
		{
			name: "default PATH when the image has none",
			mod:  func(in *ContainerInput) { in.Image.Env = nil },
			check: func(t *testing.T, s *specs.Spec) {
				if v, _ := envOf(s, "PATH"); !strings.Contains(v, "/usr/bin") {
					t.Fatalf("PATH = %q", v)
				}
			},
		},
		{
			name: "cwd defaults to /",
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.Cwd != "/" {
					t.Fatalf("cwd = %q", s.Process.Cwd)
				}
			},
		},
		{
			name: "cwd from the image",
			mod:  func(in *ContainerInput) { in.Image.WorkingDir = "/srv" },
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.Cwd != "/srv" {
					t.Fatalf("cwd = %q", s.Process.Cwd)
				}
			},
		},
		{
			name: "cwd from the CRI config wins",
			mod:  func(in *ContainerInput) { in.Image.WorkingDir = "/srv"; in.Config.WorkingDir = "/work" },
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.Cwd != "/work" {
					t.Fatalf("cwd = %q", s.Process.Cwd)
				}
			},
		},
		{
			name:    "relative CRI working_dir",
			mod:     func(in *ContainerInput) { in.Config.WorkingDir = "work" },
			wantErr: errdefs.ErrInvalidArgument, errHas: "working_dir",
		},
		{
			name: "tty",
			mod:  func(in *ContainerInput) { in.Config.Tty = true },
			check: func(t *testing.T, s *specs.Spec) {
				if !s.Process.Terminal {
					t.Fatal("Terminal not set")
				}
				if v, _ := envOf(s, "TERM"); v != "xterm" {
					t.Fatalf("TERM = %q", v)
				}
			},
		},
		{
			name: "no tty",
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.Terminal {
					t.Fatal("Terminal set")
				}
			},
		},
	})
}

func wantNS(typ specs.LinuxNamespaceType, present bool, path string) func(*testing.T, *specs.Spec) {
	return func(t *testing.T, s *specs.Spec) {
		t.Helper()
		ns, ok := findNS(s, typ)
		if ok != present {
			t.Fatalf("%s namespace present=%v, want %v (%+v)", typ, ok, present, s.Linux.Namespaces)
		}
		if ok && ns.Path != path {
			t.Fatalf("%s namespace path = %q, want %q", typ, ns.Path, path)
		}
	}
}

func checks(fs ...func(*testing.T, *specs.Spec)) func(*testing.T, *specs.Spec) {
	return func(t *testing.T, s *specs.Spec) {
		t.Helper()
		for _, f := range fs {
			f(t, s)
		}
	}
}

func setPid(mode runtimeapi.NamespaceMode) func(*ContainerInput) {
	return func(in *ContainerInput) { sc(in).NamespaceOptions.Pid = mode }
}

func TestContainerNamespaces(t *testing.T) {
	runSpecCases(t, []specCase{
		{
			name: "pod namespaces",
			check: checks(
				wantNS(specs.NetworkNamespace, true, "/var/run/netns/cni-1"),
				wantNS(specs.UTSNamespace, true, "/proc/42/ns/uts"),
				wantNS(specs.IPCNamespace, true, "/proc/42/ns/ipc"),
				wantNS(specs.PIDNamespace, true, ""),
				wantNS(specs.MountNamespace, true, ""),
				func(t *testing.T, s *specs.Spec) {
					if s.Hostname != "" {
						t.Fatalf("hostname = %q, want none (UTS is the sandbox's)", s.Hostname)
					}
				},
			),
		},
		{
			name:  "net via the infra process without a netns path",
			mod:   func(in *ContainerInput) { in.Sandbox.NetNSPath = "" },
			check: wantNS(specs.NetworkNamespace, true, "/proc/42/ns/net"),
		},
		{
			name: "host network brings host UTS",
			mod:  func(in *ContainerInput) { in.Sandbox.HostNetwork = true; in.Sandbox.NetNSPath = "" },
			check: checks(
				wantNS(specs.NetworkNamespace, false, ""),
				wantNS(specs.UTSNamespace, false, ""),
				wantNS(specs.IPCNamespace, true, "/proc/42/ns/ipc"),
			),
		},
		{
			name:  "host IPC",
			mod:   func(in *ContainerInput) { in.Sandbox.HostIPC = true; in.Sandbox.ShmPath = "" },
			check: wantNS(specs.IPCNamespace, false, ""),
		},
		{name: "pid POD", mod: setPid(runtimeapi.NamespaceMode_POD), check: wantNS(specs.PIDNamespace, true, "/proc/42/ns/pid")},
		{
			name:  "pid POD in a host-PID pod",
			mod:   func(in *ContainerInput) { setPid(runtimeapi.NamespaceMode_POD)(in); in.Sandbox.HostPID = true },
			check: wantNS(specs.PIDNamespace, false, ""),
		},
		{name: "pid CONTAINER", mod: setPid(runtimeapi.NamespaceMode_CONTAINER), check: wantNS(specs.PIDNamespace, true, "")},
		{name: "pid NODE", mod: setPid(runtimeapi.NamespaceMode_NODE), check: wantNS(specs.PIDNamespace, false, "")},
		{
			name:  "pid TARGET",
			mod:   func(in *ContainerInput) { setPid(runtimeapi.NamespaceMode_TARGET)(in); in.TargetPID = 77 },
			check: wantNS(specs.PIDNamespace, true, "/proc/77/ns/pid"),
		},
		{
			name: "pid TARGET without a pid",
			mod: func(in *ContainerInput) {
				setPid(runtimeapi.NamespaceMode_TARGET)(in)
				sc(in).NamespaceOptions.TargetId = "other"
			},
			wantErr: errdefs.ErrInvalidArgument, errHas: "TARGET",
		},
		{
			name:    "sandbox without a pid",
			mod:     func(in *ContainerInput) { in.Sandbox.Pid = 0 },
			wantErr: errdefs.ErrFailedPrecondition, errHas: "sb1",
		},
		{
			name: "host everything needs no sandbox pid",
			mod: func(in *ContainerInput) {
				in.Sandbox = SandboxFacts{ID: "sb1", HostNetwork: true, HostIPC: true, HostPID: true}
				setPid(runtimeapi.NamespaceMode_NODE)(in)
			},
			check: wantNS(specs.PIDNamespace, false, ""),
		},
		{
			name:  "cgroup namespace on cgroup v2",
			check: wantNS(specs.CgroupNamespace, cgroupV2(), ""),
		},
	})
}

func wantBind(dst, src string, opts ...string) func(*testing.T, *specs.Spec) {
	return func(t *testing.T, s *specs.Spec) {
		t.Helper()
		m, i := findMount(s, dst)
		if i < 0 {
			t.Fatalf("no mount at %s in %+v", dst, s.Mounts)
		}
		if n := countMounts(s, dst); n != 1 {
			t.Fatalf("%d mounts at %s", n, dst)
		}
		if m.Source != src || m.Type != "bind" {
			t.Fatalf("mount at %s = %+v, want a bind of %s", dst, m, src)
		}
		for _, o := range opts {
			if !slices.Contains(m.Options, o) {
				t.Fatalf("mount at %s options %q lack %q", dst, m.Options, o)
			}
		}
	}
}

func addMount(m *runtimeapi.Mount) func(*ContainerInput) {
	return func(in *ContainerInput) { in.Config.Mounts = append(in.Config.Mounts, m) }
}

func TestContainerMounts(t *testing.T) {
	runSpecCases(t, []specCase{
		{
			name: "sandbox files",
			check: checks(
				wantBind("/etc/hostname", "/run/keelson/sb1/hostname", "rbind", "rw"),
				wantBind("/etc/hosts", "/run/keelson/sb1/hosts", "rbind", "rw"),
				wantBind("/etc/resolv.conf", "/run/keelson/sb1/resolv.conf", "rbind", "rw"),
				wantBind("/dev/shm", "/run/keelson/sb1/shm", "rbind", "rw"),
				func(t *testing.T, s *specs.Spec) {
					if _, i := findMount(s, "/run"); i >= 0 {
						t.Error("the default /run tmpfs is still there")
					}
					m, i := findMount(s, "/sys/fs/cgroup")
					if i < 0 || m.Type != "cgroup" || !slices.Contains(m.Options, "ro") {
						t.Errorf("cgroup mount = %+v", m)
					}
					for _, d := range []string{"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys"} {
						if _, i := findMount(s, d); i < 0 {
							t.Errorf("default mount %s missing", d)
						}
					}
				},
			),
		},
		{
			name: "missing sandbox files are skipped",
			mod: func(in *ContainerInput) {
				in.Sandbox.HostnamePath, in.Sandbox.HostsPath, in.Sandbox.ShmPath = "", "", ""
			},
			check: func(t *testing.T, s *specs.Spec) {
				for _, d := range []string{"/etc/hostname", "/etc/hosts"} {
					if _, i := findMount(s, d); i >= 0 {
						t.Errorf("mount at %s", d)
					}
				}
				if m, _ := findMount(s, "/dev/shm"); m.Type != "tmpfs" {
					t.Errorf("/dev/shm = %+v, want the default tmpfs", m)
				}
			},
		},
		{
			name:  "host IPC binds the host's /dev/shm",
			mod:   func(in *ContainerInput) { in.Sandbox.HostIPC = true; in.Sandbox.ShmPath = "" },
			check: wantBind("/dev/shm", "/dev/shm", "rbind", "rw"),
		},
		{
			name: "read-only root makes the sandbox files read-only",
			mod:  func(in *ContainerInput) { sc(in).ReadonlyRootfs = true },
			check: checks(
				wantBind("/etc/hosts", "/run/keelson/sb1/hosts", "ro"),
				wantBind("/etc/resolv.conf", "/run/keelson/sb1/resolv.conf", "ro"),
				wantBind("/dev/shm", "/run/keelson/sb1/shm", "rw"),
				func(t *testing.T, s *specs.Spec) {
					if !s.Root.Readonly {
						t.Fatal("root not read-only")
					}
				},
			),
		},
		{
			name:  "CRI /etc/hosts replaces the sandbox's",
			mod:   addMount(&runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: "/var/lib/kubelet/pods/p/etc-hosts"}),
			check: wantBind("/etc/hosts", "/var/lib/kubelet/pods/p/etc-hosts", "rprivate", "rw"),
		},
		{
			name:  "CRI /etc/resolv.conf replaces the sandbox's",
			mod:   addMount(&runtimeapi.Mount{ContainerPath: "/etc/resolv.conf", HostPath: "/tmp/resolv", Readonly: true}),
			check: wantBind("/etc/resolv.conf", "/tmp/resolv", "ro"),
		},
		{
			name:  "CRI /dev/shm replaces the sandbox's and the default",
			mod:   addMount(&runtimeapi.Mount{ContainerPath: "/dev/shm", HostPath: "/mnt/shm"}),
			check: wantBind("/dev/shm", "/mnt/shm"),
		},
		{
			name:  "CRI mount replaces a default mount",
			mod:   addMount(&runtimeapi.Mount{ContainerPath: "/sys/fs/cgroup", HostPath: "/sys/fs/cgroup", Readonly: true}),
			check: wantBind("/sys/fs/cgroup", "/sys/fs/cgroup", "ro"),
		},
		{
			name: "CRI /dev replaces the default /dev tree",
			mod:  addMount(&runtimeapi.Mount{ContainerPath: "/dev", HostPath: "/dev"}),
			check: func(t *testing.T, s *specs.Spec) {
				for _, d := range []string{"/dev/pts", "/dev/mqueue"} {
					if _, i := findMount(s, d); i >= 0 {
						t.Errorf("default %s kept under a CRI /dev", d)
					}
				}
				wantBind("/dev", "/dev")(t, s)
			},
		},
		{
			name: "parents before children",
			mod: func(in *ContainerInput) {
				in.Config.Mounts = []*runtimeapi.Mount{
					{ContainerPath: "/data/a/b", HostPath: "/mnt/b"},
					{ContainerPath: "/data/a", HostPath: "/mnt/a"},
					{ContainerPath: "/data", HostPath: "/mnt/data"},
				}
			},
			check: func(t *testing.T, s *specs.Spec) {
				_, i := findMount(s, "/data")
				_, j := findMount(s, "/data/a")
				_, k := findMount(s, "/data/a/b")
				if i < 0 || j < 0 || k < 0 || i > j || j > k {
					t.Fatalf("order /data=%d /data/a=%d /data/a/b=%d", i, j, k)
				}
				for n, m := range s.Mounts[1:] {
					if mountDepth(m.Destination) < mountDepth(s.Mounts[n].Destination) {
						t.Fatalf("%s comes after deeper %s", m.Destination, s.Mounts[n].Destination)
					}
				}
			},
		},
		{
			name:  "trailing slashes are cleaned",
			mod:   addMount(&runtimeapi.Mount{ContainerPath: "/data/", HostPath: "/mnt/data/"}),
			check: wantBind("/data", "/mnt/data"),
		},
		{
			name:    "relative container_path",
			mod:     addMount(&runtimeapi.Mount{ContainerPath: "data", HostPath: "/mnt/data"}),
			wantErr: errdefs.ErrInvalidArgument, errHas: "container_path",
		},
		{
			// kubelet passes absolute mountPaths as written; cleaned, ".." stays inside
			// the container's root (runc resolves the destination in it).
			name: "container_path with .. is cleaned",
			mod:  addMount(&runtimeapi.Mount{ContainerPath: "/data/../../etc/x", HostPath: "/mnt/data"}),
			check: func(t *testing.T, s *specs.Spec) {
				for _, m := range s.Mounts {
					if m.Source == "/mnt/data" && m.Destination != "/etc/x" {
						t.Fatalf("destination %q", m.Destination)
					}
				}
			},
		},
		{
			name:    "host_path with ..",
			mod:     addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/../etc"}),
			wantErr: errdefs.ErrInvalidArgument, errHas: "host_path",
		},
		{
			name:    "relative host_path",
			mod:     addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "mnt/data"}),
			wantErr: errdefs.ErrInvalidArgument, errHas: "host_path",
		},
		{
			name:    "host_path with ..",
			mod:     addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/../etc"}),
			wantErr: errdefs.ErrInvalidArgument, errHas: "host_path",
		},
		{
			name:    "empty host_path",
			mod:     addMount(&runtimeapi.Mount{ContainerPath: "/data"}),
			wantErr: errdefs.ErrInvalidArgument, errHas: "host_path",
		},
		{
			name:    "mount over /",
			mod:     addMount(&runtimeapi.Mount{ContainerPath: "/", HostPath: "/mnt"}),
			wantErr: errdefs.ErrInvalidArgument, errHas: "container_path",
		},
		{
			name: "duplicate container_path",
			mod: func(in *ContainerInput) {
				in.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/a"}, {ContainerPath: "/data/", HostPath: "/b"}}
			},
			wantErr: errdefs.ErrInvalidArgument, errHas: "/data",
		},
		{
			name: "private read-only",
			mod:  addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/private", Readonly: true}),
			check: checks(wantBind("/data", "/mnt/private", "rbind", "rprivate", "ro"), func(t *testing.T, s *specs.Spec) {
				if s.Linux.RootfsPropagation != "" {
					t.Fatalf("rootfs propagation = %q", s.Linux.RootfsPropagation)
				}
			}),
		},
		{
			name: "host-to-container on a slave mount",
			mod: addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/slave",
				Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}),
			check: checks(wantBind("/data", "/mnt/slave", "rslave"), func(t *testing.T, s *specs.Spec) {
				if s.Linux.RootfsPropagation != "rslave" {
					t.Fatalf("rootfs propagation = %q", s.Linux.RootfsPropagation)
				}
			}),
		},
		{
			name: "host-to-container on a shared mount",
			mod: addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/shared",
				Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}),
			check: wantBind("/data", "/mnt/shared", "rslave"),
		},
		{
			name: "host-to-container on a private mount",
			mod: addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/private",
				Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}),
			wantErr: errdefs.ErrFailedPrecondition, errHas: "shared or slave",
		},
		{
			name: "bidirectional on a shared mount",
			mod: func(in *ContainerInput) {
				addMount(&runtimeapi.Mount{ContainerPath: "/a", HostPath: "/mnt/slave", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER})(in)
				addMount(&runtimeapi.Mount{ContainerPath: "/b", HostPath: "/mnt/shared", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL})(in)
			},
			check: checks(wantBind("/b", "/mnt/shared", "rshared"), func(t *testing.T, s *specs.Spec) {
				if s.Linux.RootfsPropagation != "rshared" {
					t.Fatalf("rootfs propagation = %q", s.Linux.RootfsPropagation)
				}
			}),
		},
		{
			name: "bidirectional on a slave mount",
			mod: addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/slave",
				Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}),
			wantErr: errdefs.ErrFailedPrecondition, errHas: "not shared",
		},
		{
			name: "propagation lookup failure",
			mod: addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/nowhere",
				Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}),
			wantErr: errdefs.ErrFailedPrecondition, errHas: "/nowhere",
		},
		{
			name: "unknown propagation",
			mod: addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/shared",
				Propagation: runtimeapi.MountPropagation(9)}),
			wantErr: errdefs.ErrInvalidArgument, errHas: "propagation",
		},
		{
			name: "recursive read-only",
			mod: func(in *ContainerInput) {
				in.RecursiveReadOnlySupported = true
				addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/private", Readonly: true, RecursiveReadOnly: true})(in)
			},
			check: func(t *testing.T, s *specs.Spec) {
				m, _ := findMount(s, "/data")
				if !slices.Contains(m.Options, "rro") || slices.Contains(m.Options, "ro") {
					t.Fatalf("options %q, want rro and no ro", m.Options)
				}
			},
		},
		{
			name: "recursive read-only without readonly",
			mod: func(in *ContainerInput) {
				in.RecursiveReadOnlySupported = true
				addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/private", RecursiveReadOnly: true})(in)
			},
			wantErr: errdefs.ErrInvalidArgument, errHas: "readonly",
		},
		{
			name: "recursive read-only with propagation",
			mod: func(in *ContainerInput) {
				in.RecursiveReadOnlySupported = true
				addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/slave", Readonly: true, RecursiveReadOnly: true,
					Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER})(in)
			},
			wantErr: errdefs.ErrInvalidArgument, errHas: "PRIVATE",
		},
		{
			name:    "recursive read-only unsupported",
			mod:     addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/private", Readonly: true, RecursiveReadOnly: true}),
			wantErr: errdefs.ErrFailedPrecondition, errHas: "recursive read-only",
		},
		{
			name:    "image volume",
			mod:     addMount(&runtimeapi.Mount{ContainerPath: "/data", Image: &runtimeapi.ImageSpec{Image: "sha256:abc"}}),
			wantErr: errdefs.ErrNotImplemented, errHas: "image",
		},
		{
			name:  "mount options",
			mod:   addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/data", MountOptions: []string{"nosuid", "noexec"}}),
			check: wantBind("/data", "/mnt/data", "nosuid", "noexec", "rw"),
		},
		{
			name:    "forbidden mount option",
			mod:     addMount(&runtimeapi.Mount{ContainerPath: "/data", HostPath: "/mnt/data", MountOptions: []string{"shared"}}),
			wantErr: errdefs.ErrInvalidArgument, errHas: "shared",
		},
	})
}

func TestContainerDevices(t *testing.T) {
	runSpecCases(t, []specCase{
		{
			name: "CRI device",
			mod: func(in *ContainerInput) {
				in.Config.Devices = []*runtimeapi.Device{{HostPath: "/dev/null", ContainerPath: "/dev/xnull", Permissions: "rw"}}
			},
			check: func(t *testing.T, s *specs.Spec) {
				i := slices.IndexFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/xnull" })
				if i < 0 {
					t.Fatalf("devices %+v lack /dev/xnull", s.Linux.Devices)
				}
				d := s.Linux.Devices[i]
				if !slices.ContainsFunc(s.Linux.Resources.Devices, func(r specs.LinuxDeviceCgroup) bool {
					return r.Allow && r.Access == "rw" && r.Major != nil && *r.Major == d.Major && r.Minor != nil && *r.Minor == d.Minor
				}) {
					t.Fatalf("no rw cgroup rule for %+v in %+v", d, s.Linux.Resources.Devices)
				}
			},
		},
		{
			name: "bad permissions",
			mod: func(in *ContainerInput) {
				in.Config.Devices = []*runtimeapi.Device{{HostPath: "/dev/null", ContainerPath: "/dev/null", Permissions: "rwx"}}
			},
			wantErr: errdefs.ErrInvalidArgument, errHas: "permissions",
		},
		{
			name: "missing device",
			mod: func(in *ContainerInput) {
				in.Config.Devices = []*runtimeapi.Device{{HostPath: "/dev/keelson-no-such-device", ContainerPath: "/dev/x", Permissions: "r"}}
			},
			wantErr: errdefs.ErrInvalidArgument, errHas: "/dev/keelson-no-such-device",
		},
	})
}

func privileged(in *ContainerInput) {
	in.SandboxConfig.Linux = &runtimeapi.LinuxPodSandboxConfig{
		SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{Privileged: true},
	}
	sc(in).Privileged = true
}

func TestContainerPrivileged(t *testing.T) {
	all, err := cap.Current()
	if err != nil {
		t.Fatal(err)
	}
	runSpecCases(t, []specCase{
		{
			name: "privileged",
			mod: func(in *ContainerInput) {
				privileged(in)
				sc(in).Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
				sc(in).MaskedPaths = []string{"/proc/kcore"}
				sc(in).Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Equal(s.Process.Capabilities.Bounding, all) || !slices.Equal(s.Process.Capabilities.Effective, all) {
					t.Errorf("caps = %v, want all current %v", s.Process.Capabilities.Bounding, all)
				}
				if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
					t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
				if s.Linux.Seccomp != nil {
					t.Error("seccomp set")
				}
				for _, d := range []string{"/sys", "/sys/fs/cgroup"} {
					m, _ := findMount(s, d)
					if slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rw") {
						t.Errorf("%s options %q, want rw", d, m.Options)
					}
				}
				if !slices.ContainsFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/fake0" }) {
					t.Errorf("host devices missing: %+v", s.Linux.Devices)
				}
				if len(s.Linux.Resources.Devices) != 1 || !s.Linux.Resources.Devices[0].Allow || s.Linux.Resources.Devices[0].Access != "rwm" {
					t.Errorf("device rules %+v, want allow all", s.Linux.Resources.Devices)
				}
				if _, ok := findNS(s, specs.CgroupNamespace); ok {
					t.Error("privileged container got a private cgroup namespace")
				}
			},
		},
		{
			name:    "privileged container in an unprivileged pod",
			mod:     func(in *ContainerInput) { sc(in).Privileged = true },
			wantErr: errdefs.ErrInvalidArgument, errHas: "privileged",
		},
		{
			name: "host device listing fails",
			mod: func(in *ContainerInput) {
				privileged(in)
				in.HostDevices = func() ([]specs.LinuxDevice, error) { return nil, errors.New("boom") }
			},
			errHas: "boom", wantErr: errAny,
		},
		{
			name: "unprivileged keeps the defaults",
			check: func(t *testing.T, s *specs.Spec) {
				m, _ := findMount(s, "/sys")
				if !slices.Contains(m.Options, "ro") {
					t.Errorf("/sys options %q", m.Options)
				}
				if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
					t.Errorf("masked %v readonly %v, want containerd's defaults", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
			},
		},
	})
}

func TestContainerCapabilities(t *testing.T) {
	all, err := cap.Current()
	if err != nil {
		t.Fatal(err)
	}
	setCaps := func(add, drop []string) func(*ContainerInput) {
		return func(in *ContainerInput) {
			sc(in).Capabilities = &runtimeapi.Capability{AddCapabilities: add, DropCapabilities: drop}
		}
	}
	wantCaps := func(want func([]string) bool, desc string) func(*testing.T, *specs.Spec) {
		return func(t *testing.T, s *specs.Spec) {
			c := s.Process.Capabilities
			for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted} {
				if !want(set) {
					t.Fatalf("caps %v: want %s", set, desc)
				}
			}
			if len(c.Ambient) != 0 {
				t.Fatalf("ambient caps %v", c.Ambient)
			}
		}
	}
	runSpecCases(t, []specCase{
		{
			name: "defaults",
			check: wantCaps(func(c []string) bool {
				return slices.Contains(c, "CAP_CHOWN") && !slices.Contains(c, "CAP_SYS_ADMIN")
			}, "containerd's default set"),
		},
		{
			name: "add and drop, with and without the prefix",
			mod:  setCaps([]string{"NET_ADMIN", "cap_sys_time"}, []string{"KILL", "CAP_CHOWN"}),
			check: wantCaps(func(c []string) bool {
				return slices.Contains(c, "CAP_NET_ADMIN") && slices.Contains(c, "CAP_SYS_TIME") &&
					!slices.Contains(c, "CAP_KILL") && !slices.Contains(c, "CAP_CHOWN") && slices.Contains(c, "CAP_SETUID")
			}, "NET_ADMIN and SYS_TIME added, KILL and CHOWN dropped"),
		},
		{
			name: "add ALL then drop one",
			mod:  setCaps([]string{"ALL"}, []string{"NET_RAW"}),
			check: wantCaps(func(c []string) bool {
				want := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == "CAP_NET_RAW" })
				return len(c) == len(want) && !slices.Contains(c, "CAP_NET_RAW")
			}, "all current caps but NET_RAW"),
		},
		{
			name: "drop ALL then add one",
			mod:  setCaps([]string{"CHOWN"}, []string{"all"}),
			check: wantCaps(func(c []string) bool {
				return slices.Equal(c, []string{"CAP_CHOWN"})
			}, "only CHOWN"),
		},
		{
			name:  "drop ALL",
			mod:   setCaps(nil, []string{"ALL"}),
			check: wantCaps(func(c []string) bool { return len(c) == 0 }, "none"),
		},
	})
}

func TestContainerSecurityFlags(t *testing.T) {
	runSpecCases(t, []specCase{
		{
			name: "new privileges by default",
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.NoNewPrivileges {
					t.Fatal("no_new_privs set without being asked")
				}
				if s.Root.Readonly {
					t.Fatal("root read-only without being asked")
				}
			},
		},
		{
			name: "no_new_privs",
			mod:  func(in *ContainerInput) { sc(in).NoNewPrivs = true },
			check: func(t *testing.T, s *specs.Spec) {
				if !s.Process.NoNewPrivileges {
					t.Fatal("no_new_privs not set")
				}
			},
		},
		{
			name: "readonly rootfs",
			mod:  func(in *ContainerInput) { sc(in).ReadonlyRootfs = true },
			check: func(t *testing.T, s *specs.Spec) {
				if !s.Root.Readonly {
					t.Fatal("root writable")
				}
			},
		},
		{
			name: "masked and readonly paths from the request",
			mod: func(in *ContainerInput) {
				sc(in).MaskedPaths = []string{"/proc/a"}
				sc(in).ReadonlyPaths = []string{"/proc/b"}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if !slices.Equal(s.Linux.MaskedPaths, []string{"/proc/a"}) || !slices.Equal(s.Linux.ReadonlyPaths, []string{"/proc/b"}) {
					t.Fatalf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
			},
		},
		{
			name: "selinux options are ignored",
			mod: func(in *ContainerInput) {
				sc(in).SelinuxOptions = &runtimeapi.SELinuxOption{Type: "spc_t"}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.SelinuxLabel != "" || s.Linux.MountLabel != "" {
					t.Fatal("selinux label set")
				}
			},
		},
		{
			name: "sandbox sysctls stay off containers",
			mod: func(in *ContainerInput) {
				in.SandboxConfig.Linux = &runtimeapi.LinuxPodSandboxConfig{Sysctls: map[string]string{"net.core.somaxconn": "1024"}}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Linux.Sysctl) != 0 {
					t.Fatalf("sysctls %v", s.Linux.Sysctl)
				}
			},
		},
	})
}

func wantUser(uid, gid uint32, gids ...uint32) func(*testing.T, *specs.Spec) {
	return func(t *testing.T, s *specs.Spec) {
		t.Helper()
		u := s.Process.User
		if u.UID != uid || u.GID != gid || !slices.Equal(u.AdditionalGids, gids) {
			t.Fatalf("user = %d:%d %v, want %d:%d %v", u.UID, u.GID, u.AdditionalGids, uid, gid, gids)
		}
	}
}

func imageUser(u string) func(*ContainerInput) {
	return func(in *ContainerInput) { in.Image.User = u }
}

func TestContainerUser(t *testing.T) {
	runSpecCases(t, []specCase{
		{name: "root by default", check: wantUser(0, 0, 0)},
		{name: "image uid", mod: imageUser("1000"), check: wantUser(1000, 1000, 1000, 29, 44)},
		{name: "image name", mod: imageUser("app"), check: wantUser(1000, 1000, 1000, 29, 44)},
		{name: "image uid:gid", mod: imageUser("1000:50"), check: wantUser(1000, 50, 50, 29, 44)},
		{name: "image name:group", mod: imageUser("app:staff"), check: wantUser(1000, 50, 50, 29, 44)},
		{name: "image name:gid", mod: imageUser("web:7"), check: wantUser(33, 7, 7, 29)},
		{name: "image uid not in passwd", mod: imageUser("4242"), check: wantUser(4242, 0, 0)},
		{
			name:    "image name not in passwd",
			mod:     imageUser("nobody"),
			wantErr: errdefs.ErrInvalidArgument, errHas: `"nobody"`,
		},
		{
			name:    "image group not in group",
			mod:     imageUser("app:wheel"),
			wantErr: errdefs.ErrInvalidArgument, errHas: `"wheel"`,
		},
		{
			name:    "uid out of range",
			mod:     imageUser("4294967295"),
			wantErr: errdefs.ErrInvalidArgument, errHas: "out of range",
		},
		{
			name:  "run_as_user wins over the image",
			mod:   func(in *ContainerInput) { in.Image.User = "app"; sc(in).RunAsUser = &runtimeapi.Int64Value{Value: 33} },
			check: wantUser(33, 33, 33, 29),
		},
		{
			name: "run_as_user and run_as_group",
			mod: func(in *ContainerInput) {
				sc(in).RunAsUser = &runtimeapi.Int64Value{Value: 1000}
				sc(in).RunAsGroup = &runtimeapi.Int64Value{Value: 2000}
			},
			check: wantUser(1000, 2000, 2000, 29, 44),
		},
		{
			name: "run_as_group with the image's user",
			mod: func(in *ContainerInput) {
				in.Image.User = "app:staff"
				sc(in).RunAsGroup = &runtimeapi.Int64Value{Value: 7}
			},
			check: wantUser(1000, 7, 7, 29, 44),
		},
		{
			name:  "run_as_username",
			mod:   func(in *ContainerInput) { sc(in).RunAsUsername = "web" },
			check: wantUser(33, 33, 33, 29),
		},
		{
			name:    "unknown run_as_username",
			mod:     func(in *ContainerInput) { sc(in).RunAsUsername = "ghost" },
			wantErr: errdefs.ErrInvalidArgument, errHas: `"ghost"`,
		},
		{
			name:    "negative run_as_user",
			mod:     func(in *ContainerInput) { sc(in).RunAsUser = &runtimeapi.Int64Value{Value: -1} },
			wantErr: errdefs.ErrInvalidArgument, errHas: "run_as_user",
		},
		{
			name:  "image without passwd or group",
			mod:   func(in *ContainerInput) { in.Image.User = "65532"; in.ReadImageFile = fakeFiles(nil) },
			check: wantUser(65532, 0, 0),
		},
		{
			name:    "image without passwd and a name",
			mod:     func(in *ContainerInput) { in.Image.User = "app"; in.ReadImageFile = fakeFiles(nil) },
			wantErr: errdefs.ErrInvalidArgument, errHas: "/etc/passwd",
		},
		{
			name: "unreadable passwd",
			mod: func(in *ContainerInput) {
				in.ReadImageFile = func(string) ([]byte, error) { return nil, errors.New("snapshot gone") }
			},
			wantErr: errAny, errHas: "snapshot gone",
		},
		{
			name: "merge: image groups and requested groups",
			mod: func(in *ContainerInput) {
				in.Image.User = "app"
				sc(in).SupplementalGroups = []int64{3000, 29, 1000}
			},
			check: wantUser(1000, 1000, 1000, 29, 44, 3000),
		},
		{
			name: "strict: only requested groups",
			mod: func(in *ContainerInput) {
				in.Image.User = "app"
				sc(in).SupplementalGroups = []int64{3000}
				sc(in).SupplementalGroupsPolicy = runtimeapi.SupplementalGroupsPolicy_Strict
			},
			check: wantUser(1000, 1000, 1000, 3000),
		},
		{
			name: "unknown supplemental groups policy",
			mod: func(in *ContainerInput) {
				sc(in).SupplementalGroupsPolicy = runtimeapi.SupplementalGroupsPolicy(7)
			},
			wantErr: errdefs.ErrNotImplemented,
		},
	})
}

func TestContainerSeccompAppArmor(t *testing.T) {
	seccomp := func(p *runtimeapi.SecurityProfile) func(*ContainerInput) {
		return func(in *ContainerInput) { sc(in).Seccomp = p }
	}
	apparmor := func(p *runtimeapi.SecurityProfile) func(*ContainerInput) {
		return func(in *ContainerInput) { sc(in).Apparmor = p }
	}
	noSeccomp := func(t *testing.T, s *specs.Spec) {
		if s.Linux.Seccomp != nil {
			t.Fatal("seccomp set")
		}
	}
	defaultSeccomp := func(t *testing.T, s *specs.Spec) {
		if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno || len(s.Linux.Seccomp.Syscalls) == 0 {
			t.Fatalf("seccomp = %+v, want the default profile", s.Linux.Seccomp)
		}
	}
	logSeccomp := func(t *testing.T, s *specs.Spec) {
		if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActLog {
			t.Fatalf("seccomp = %+v, want the localhost profile", s.Linux.Seccomp)
		}
	}
	noAppArmor := func(t *testing.T, s *specs.Spec) {
		if s.Process.ApparmorProfile != "" {
			t.Fatalf("apparmor profile %q", s.Process.ApparmorProfile)
		}
	}
	runSpecCases(t, []specCase{
		{name: "seccomp unset", check: noSeccomp},
		{name: "seccomp runtime default", mod: seccomp(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}), check: defaultSeccomp},
		{name: "seccomp unconfined", mod: seccomp(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}), check: noSeccomp},
		{
			name:  "seccomp localhost",
			mod:   seccomp(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/var/lib/kubelet/seccomp/log.json"}),
			check: logSeccomp,
		},
		{
			name:    "seccomp localhost relative",
			mod:     seccomp(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "log.json"}),
			wantErr: errdefs.ErrInvalidArgument, errHas: "log.json",
		},
		{
			name:    "seccomp localhost missing",
			mod:     seccomp(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/nope.json"}),
			wantErr: errdefs.ErrInvalidArgument, errHas: "/nope.json",
		},
		{name: "legacy seccomp runtime/default", mod: func(in *ContainerInput) { sc(in).SeccompProfilePath = "runtime/default" }, check: defaultSeccomp},
		{
			name:  "legacy seccomp localhost",
			mod:   func(in *ContainerInput) { sc(in).SeccompProfilePath = "localhost//var/lib/kubelet/seccomp/log.json" },
			check: logSeccomp,
		},
		{
			name:    "legacy seccomp garbage",
			mod:     func(in *ContainerInput) { sc(in).SeccompProfilePath = "strict" },
			wantErr: errdefs.ErrInvalidArgument, errHas: "seccomp_profile_path",
		},
		{name: "apparmor default without apparmor", mod: apparmor(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}), check: noAppArmor},
		{name: "apparmor unconfined without apparmor", mod: apparmor(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}), check: noAppArmor},
		{
			name:    "apparmor localhost without apparmor",
			mod:     apparmor(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "my-profile"}),
			wantErr: errdefs.ErrFailedPrecondition, errHas: "AppArmor is not enabled on this host",
		},
		{
			name:    "legacy apparmor localhost without apparmor",
			mod:     func(in *ContainerInput) { sc(in).ApparmorProfile = "localhost/my-profile" },
			wantErr: errdefs.ErrFailedPrecondition, errHas: "my-profile",
		},
		{
			name: "apparmor localhost with apparmor",
			mod: func(in *ContainerInput) {
				in.AppArmorEnabled = true
				apparmor(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "localhost/my-profile"})(in)
			},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.ApparmorProfile != "my-profile" {
					t.Fatalf("apparmor profile %q", s.Process.ApparmorProfile)
				}
			},
		},
		{
			name: "privileged with apparmor: unconfined, as asked for nothing or RuntimeDefault",
			mod: func(in *ContainerInput) {
				in.AppArmorEnabled = true
				privileged(in)
			},
			check: noAppArmor,
		},
		{
			name: "privileged with apparmor and a Localhost profile: unconfined too",
			mod: func(in *ContainerInput) {
				in.AppArmorEnabled = true
				privileged(in)
				apparmor(&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "localhost/my-profile"})(in)
			},
			check: noAppArmor,
		},
	})
}

func TestContainerResources(t *testing.T) {
	restore := hugetlbPresent
	t.Cleanup(func() { hugetlbPresent = restore })
	hugetlbPresent = func() bool { return true }

	runSpecCases(t, []specCase{
		{
			name: "all resources",
			mod: func(in *ContainerInput) {
				r := res(in)
				r.CpuPeriod, r.CpuQuota, r.CpuShares = 100000, 50000, 512
				r.CpusetCpus, r.CpusetMems = "0-1", "0"
				r.MemoryLimitInBytes, r.MemorySwapLimitInBytes = 256<<20, 512<<20
				r.HugepageLimits = []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}}
				r.Unified = map[string]string{"memory.high": "200000000"}
				in.PidsLimit = 1024
			},
			check: func(t *testing.T, s *specs.Spec) {
				r := s.Linux.Resources
				if *r.CPU.Period != 100000 || *r.CPU.Quota != 50000 || *r.CPU.Shares != 512 || r.CPU.Cpus != "0-1" || r.CPU.Mems != "0" {
					t.Errorf("cpu = %+v", r.CPU)
				}
				if *r.Memory.Limit != 256<<20 || *r.Memory.Swap != 512<<20 {
					t.Errorf("memory = %+v", r.Memory)
				}
				if len(r.HugepageLimits) != 1 || r.HugepageLimits[0].Pagesize != "2MB" || r.HugepageLimits[0].Limit != 4<<20 {
					t.Errorf("hugepages = %+v", r.HugepageLimits)
				}
				if r.Unified["memory.high"] != "200000000" {
					t.Errorf("unified = %v", r.Unified)
				}
				if r.Pids == nil || *r.Pids.Limit != 1024 {
					t.Errorf("pids = %+v", r.Pids)
				}
			},
		},
		{
			name: "nothing set",
			check: func(t *testing.T, s *specs.Spec) {
				r := s.Linux.Resources
				if r.CPU != nil || r.Memory != nil || r.Pids != nil || r.Unified != nil || r.HugepageLimits != nil {
					t.Errorf("resources = %+v", r)
				}
			},
		},
		{
			name: "quota without period",
			mod:  func(in *ContainerInput) { res(in).CpuQuota = 20000 },
			check: func(t *testing.T, s *specs.Spec) {
				if c := s.Linux.Resources.CPU; *c.Quota != 20000 || *c.Period != 100000 {
					t.Errorf("cpu = %+v", c)
				}
			},
		},
		{
			name: "memory without swap leaves swap alone",
			mod:  func(in *ContainerInput) { res(in).MemoryLimitInBytes = 1 << 30 },
			check: func(t *testing.T, s *specs.Spec) {
				if m := s.Linux.Resources.Memory; *m.Limit != 1<<30 || m.Swap != nil {
					t.Errorf("memory = %+v", m)
				}
			},
		},
		{
			name:    "negative memory",
			mod:     func(in *ContainerInput) { res(in).MemoryLimitInBytes = -1 },
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "oom_score_adj clamped to our own",
			mod:  func(in *ContainerInput) { in.OwnOOM = -500; res(in).OomScoreAdj = -998 },
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != -500 {
					t.Errorf("oom_score_adj = %d", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "oom_score_adj above our own is kept",
			mod:  func(in *ContainerInput) { in.OwnOOM = -500; res(in).OomScoreAdj = 1000 },
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != 1000 {
					t.Errorf("oom_score_adj = %d", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "oom_score_adj without resources",
			mod:  func(in *ContainerInput) { in.OwnOOM = 10 },
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != 10 {
					t.Errorf("oom_score_adj = %d", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "cgroups path under the pod",
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.CgroupsPath != "/kubepods/pod1/c1" {
					t.Errorf("cgroups path = %q", s.Linux.CgroupsPath)
				}
			},
		},
		{
			name: "no cgroup parent",
			mod:  func(in *ContainerInput) { in.Sandbox.CgroupParent = "" },
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.CgroupsPath != "/"+DefaultNamespace+"/c1" {
					t.Errorf("cgroups path = %q", s.Linux.CgroupsPath)
				}
			},
		},
		{
			name: "no rlimits: the runtime's are inherited",
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Process.Rlimits) != 0 {
					t.Errorf("rlimits %v", s.Process.Rlimits)
				}
			},
		},
	})

	hugetlbPresent = func() bool { return false }
	runSpecCases(t, []specCase{{
		name: "hugepages skipped without the controller",
		mod: func(in *ContainerInput) {
			res(in).HugepageLimits = []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 0}}
		},
		check: func(t *testing.T, s *specs.Spec) {
			if len(s.Linux.Resources.HugepageLimits) != 0 {
				t.Errorf("hugepages = %+v", s.Linux.Resources.HugepageLimits)
			}
		},
	}})
}

func TestContainerAnnotations(t *testing.T) {
	runSpecCases(t, []specCase{{
		name: "identity and CRI annotations",
		mod: func(in *ContainerInput) {
			in.Config.Annotations = map[string]string{"team": "a", AnnotationSandboxID: "spoofed"}
		},
		check: func(t *testing.T, s *specs.Spec) {
			want := map[string]string{
				AnnotationContainerType: ContainerTypeContainer,
				AnnotationSandboxID:     "sb1",
				AnnotationSandboxName:   "pod",
				AnnotationSandboxNS:     "default",
				AnnotationSandboxUID:    "pod-uid",
				AnnotationContainerName: "app",
				AnnotationImageName:     "docker.io/library/app:1",
				"team":                  "a",
			}
			for k, v := range want {
				if s.Annotations[k] != v {
					t.Errorf("annotation %s = %q, want %q", k, s.Annotations[k], v)
				}
			}
		},
	}})
}

func TestPropagationHelpers(t *testing.T) {
	for _, tc := range []struct {
		optional      string
		shared, slave bool
	}{
		{"", false, false},
		{"shared:1", true, false},
		{"master:3", false, true},
		{"shared:4 master:3", true, true},
		{"unbindable", false, false},
	} {
		if sh, sl := propagationOf(tc.optional); sh != tc.shared || sl != tc.slave {
			t.Errorf("propagationOf(%q) = %v %v", tc.optional, sh, sl)
		}
	}
	for _, tc := range []struct {
		p, mp string
		want  bool
	}{
		{"/var/lib/x", "/", true},
		{"/var/lib/x", "/var/lib", true},
		{"/var/lib", "/var/lib", true},
		{"/var/lib2/x", "/var/lib", false},
	} {
		if got := isUnder(tc.p, tc.mp); got != tc.want {
			t.Errorf("isUnder(%q, %q) = %v", tc.p, tc.mp, got)
		}
	}
	// The real table: / is always mounted, and a missing path is judged by its parent.
	if _, _, err := HostMountPropagation("/keelson-no-such-dir/x"); err != nil {
		t.Errorf("HostMountPropagation: %v", err)
	}
}

func TestAppArmorLocalhostProfileMustBeLoaded(t *testing.T) {
	restore := appArmorProfileLoaded
	t.Cleanup(func() { appArmorProfileLoaded = restore })
	appArmorProfileLoaded = func(name string) (bool, error) { return name == "loaded-one", nil }
	localhost := func(name string) func(*ContainerInput) {
		return func(in *ContainerInput) {
			in.AppArmorEnabled = true
			in.Config.Linux.SecurityContext.Apparmor = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: name}
		}
	}
	runSpecCases(t, []specCase{
		{name: "loaded", mod: localhost("loaded-one"), check: func(t *testing.T, s *specs.Spec) {
			if s.Process.ApparmorProfile != "loaded-one" {
				t.Fatalf("profile %q", s.Process.ApparmorProfile)
			}
		}},
		{name: "not loaded", mod: localhost("missing"), wantErr: errdefs.ErrFailedPrecondition, errHas: `"missing" is not loaded`},
	})
}

func TestSELinuxLabels(t *testing.T) {
	l := selinux.Labels{Process: "system_u:system_r:container_t:s0:c1,c2", Mount: "system_u:object_r:container_file_t:s0:c1,c2"}
	runSpecCases(t, []specCase{
		{
			name: "labels where SELinux is on",
			mod:  func(in *ContainerInput) { in.SELinux = l },
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.SelinuxLabel != l.Process || s.Linux.MountLabel != l.Mount {
					t.Errorf("labels %q %q", s.Process.SelinuxLabel, s.Linux.MountLabel)
				}
			},
		},
		{
			name: "none where it is off",
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.SelinuxLabel != "" || s.Linux.MountLabel != "" {
					t.Errorf("labels %q %q", s.Process.SelinuxLabel, s.Linux.MountLabel)
				}
			},
		},
		{
			name: "privileged: the policy's default",
			mod:  func(in *ContainerInput) { in.SELinux = l; privileged(in) },
			check: func(t *testing.T, s *specs.Spec) {
				if s.Process.SelinuxLabel != "" {
					t.Errorf("process label %q", s.Process.SelinuxLabel)
				}
			},
		},
	})
	in := testSandboxInput()
	in.SELinux = l
	s, err := SandboxSpec(namespaces.WithNamespace(context.Background(), "k"), in)
	if err != nil || s.Process.SelinuxLabel != l.Process || s.Linux.MountLabel != l.Mount {
		t.Errorf("sandbox labels: %v %q %q", err, s.Process.SelinuxLabel, s.Linux.MountLabel)
	}
}
