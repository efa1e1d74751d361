package oci

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func testSandboxInput() SandboxInput {
	return SandboxInput{
		ID: "sb1",
		Config: &runtimeapi.PodSandboxConfig{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "pod", Namespace: "default", Uid: "pod-uid"},
			Hostname: "pod-host",
			Linux: &runtimeapi.LinuxPodSandboxConfig{
				CgroupParent:    "/kubepods/besteffort/pod1",
				SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{}},
			},
		},
		Image:     ocispec.ImageConfig{Entrypoint: []string{"/pause"}, User: "65535:65535"},
		NetNSPath: "/var/run/netns/cni-1",
	}
}

func sbNS(in *SandboxInput) *runtimeapi.NamespaceOption {
	return in.Config.Linux.SecurityContext.NamespaceOptions
}

func TestSandboxSpec(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mod     func(*SandboxInput)
		wantErr error
		errHas  string
		check   func(*testing.T, *specs.Spec)
	}{
		{
			name: "pod network",
			check: func(t *testing.T, s *specs.Spec) {
				if ns, ok := findNS(s, specs.NetworkNamespace); !ok || ns.Path != "/var/run/netns/cni-1" {
					t.Errorf("net namespace = %+v, %v", ns, ok)
				}
				if _, ok := findNS(s, specs.UTSNamespace); !ok {
					t.Error("no UTS namespace")
				}
				if s.Hostname != "pod-host" {
					t.Errorf("hostname = %q", s.Hostname)
				}
				if !slices.Equal(s.Process.Args, []string{"/pause"}) || !s.Root.Readonly {
					t.Errorf("args %q readonly %v", s.Process.Args, s.Root.Readonly)
				}
				if s.Annotations[AnnotationContainerType] != ContainerTypeSandbox || s.Annotations[AnnotationSandboxID] != "sb1" || s.Annotations[AnnotationSandboxUID] != "pod-uid" {
					t.Errorf("annotations %v", s.Annotations)
				}
			},
		},
		{
			name: "host network: host net and UTS, no hostname",
			mod:  func(in *SandboxInput) { sbNS(in).Network = runtimeapi.NamespaceMode_NODE; in.NetNSPath = "" },
			check: func(t *testing.T, s *specs.Spec) {
				if _, ok := findNS(s, specs.NetworkNamespace); ok {
					t.Error("own net namespace with host network")
				}
				if _, ok := findNS(s, specs.UTSNamespace); ok {
					t.Error("own UTS namespace with host network")
				}
				if s.Hostname != "" {
					t.Errorf("hostname = %q", s.Hostname)
				}
			},
		},
		{
			name: "host IPC and PID",
			mod: func(in *SandboxInput) {
				sbNS(in).Ipc = runtimeapi.NamespaceMode_NODE
				sbNS(in).Pid = runtimeapi.NamespaceMode_NODE
			},
			check: func(t *testing.T, s *specs.Spec) {
				if _, ok := findNS(s, specs.IPCNamespace); ok {
					t.Error("own IPC namespace")
				}
				if _, ok := findNS(s, specs.PIDNamespace); ok {
					t.Error("own PID namespace")
				}
			},
		},
		{
			name: "sysctls",
			mod: func(in *SandboxInput) {
				in.Config.Linux.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.shm_rmid_forced": "1"}
			},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "0" || s.Linux.Sysctl["kernel.shm_rmid_forced"] != "1" {
					t.Errorf("sysctls %v", s.Linux.Sysctl)
				}
			},
		},
		{
			name: "oom_score_adj clamped to our own",
			mod:  func(in *SandboxInput) { in.OwnOOM = -500 },
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != -500 {
					t.Errorf("oom_score_adj = %d", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "oom_score_adj when we may go lower",
			mod:  func(in *SandboxInput) { in.OwnOOM = -1000 },
			check: func(t *testing.T, s *specs.Spec) {
				if *s.Process.OOMScoreAdj != SandboxOOMScoreAdj {
					t.Errorf("oom_score_adj = %d", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "cgroup path",
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.CgroupsPath != "/kubepods/besteffort/pod1/sb1" {
					t.Errorf("cgroups path = %q", s.Linux.CgroupsPath)
				}
			},
		},
		{
			name:  "image user",
			check: wantUser(65535, 65535, 65535),
		},
		{
			name: "run_as_user and run_as_group",
			mod: func(in *SandboxInput) {
				in.Config.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: 1000}
				in.Config.Linux.SecurityContext.RunAsGroup = &runtimeapi.Int64Value{Value: 3000}
				in.Config.Linux.SecurityContext.SupplementalGroups = []int64{3000, 4000}
			},
			check: wantUser(1000, 3000, 3000, 4000),
		},
		{
			name: "negative run_as_user",
			mod: func(in *SandboxInput) {
				in.Config.Linux.SecurityContext.RunAsUser = &runtimeapi.Int64Value{Value: -1}
			},
			wantErr: errdefs.ErrInvalidArgument, errHas: "run_as_user",
		},
		{
			name:  "non-numeric image user stays root",
			mod:   func(in *SandboxInput) { in.Image.User = "65535abc" },
			check: wantUser(0, 0),
		},
		{
			name:    "no command",
			mod:     func(in *SandboxInput) { in.Image.Entrypoint = nil },
			wantErr: errdefs.ErrInvalidArgument,
		},
		{
			name: "host user namespace is fine",
			mod: func(in *SandboxInput) {
				sbNS(in).UsernsOptions = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testSandboxInput()
			if tc.mod != nil {
				tc.mod(&in)
			}
			spec, err := SandboxSpec(context.Background(), in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("want a %v error, got %v", tc.wantErr, err)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %q does not mention %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("SandboxSpec: %v", err)
			}
			if tc.check != nil {
				tc.check(t, spec)
			}
		})
	}
}

func TestGenerateKeepsContextNamespace(t *testing.T) {
	in := testSandboxInput()
	in.Config.Linux.CgroupParent = ""
	spec, err := SandboxSpec(namespaces.WithNamespace(context.Background(), "other"), in)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Linux.CgroupsPath != "/other/sb1" {
		t.Fatalf("cgroups path = %q", spec.Linux.CgroupsPath)
	}
}

func TestClampOOMScoreAdj(t *testing.T) {
	for _, tc := range []struct{ adj, own, want int }{
		{-998, 0, 0},
		{-998, -999, -998},
		{500, -100, 500},
		{-2000, -1000, -1000},
		{1500, 0, 1000},
	} {
		if got := ClampOOMScoreAdj(tc.adj, tc.own); got != tc.want {
			t.Errorf("ClampOOMScoreAdj(%d, %d) = %d, want %d", tc.adj, tc.own, got, tc.want)
		}
	}
}
