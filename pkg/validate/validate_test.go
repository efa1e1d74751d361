package validate

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var host = Host{CgroupDriver: "cgroupfs", CPUs: map[int]bool{0: true, 1: true}, Mems: map[int]bool{0: true}}

func goodPod() *runtimeapi.PodSandboxConfig {
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "web-0", Namespace: "default", Uid: "0b9a8e56-3f6a-4c1e-9d1b-2b3c4d5e6f70", Attempt: 1},
		Hostname:     "web-0",
		LogDirectory: "/var/log/pods/default_web-0_0b9a8e56",
		DnsConfig: &runtimeapi.DNSConfig{
			Servers:  []string{"10.96.0.10", "fd00::a"},
			Searches: []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local."},
			Options:  []string{"ndots:5", "edns0"},
		},
		PortMappings: []*runtimeapi.PortMapping{
			{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: 8080},
			{Protocol: runtimeapi.Protocol_UDP, ContainerPort: 53},
			{Protocol: runtimeapi.Protocol_SCTP, ContainerPort: 9, HostPort: 65535, HostIp: "127.0.0.1"},
		},
		Labels:      map[string]string{"app": "web"},
		Annotations: map[string]string{"kubernetes.io/config.source": "api", "multi": "line\nvalue"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/burstable/pod0b9a8e56",
			Sysctls:      map[string]string{"net.ipv4.ip_local_port_range": "1024 65000", "kernel.shm_rmid_forced": "1", "net/ipv4/conf/eth0.100/forwarding": "1", "kernel.sem": "250 32000 32 128"},
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions:   &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
				RunAsUser:          &runtimeapi.Int64Value{Value: 1000},
				RunAsGroup:         &runtimeapi.Int64Value{Value: 1000},
				SupplementalGroups: []int64{2000},
				Seccomp:            &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
			},
			Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 1 << 28},
		},
	}
}

func TestPodSandbox(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(c *runtimeapi.PodSandboxConfig)
		field string // "" = valid
		h     *Host
	}{
		{name: "kubelet-style pod"},
		{name: "nil config", mod: nil, field: "config"},
		{name: "no metadata", mod: func(c *runtimeapi.PodSandboxConfig) { c.Metadata = nil }, field: "config.metadata"},
		{name: "empty name", mod: func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "" }, field: "config.metadata.name"},
		{name: "NUL in name", mod: func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "a\x00b" }, field: "config.metadata.name"},
		{name: "CNI_ARGS injection in namespace", mod: func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Namespace = "ns;IP=10.0.0.9" }, field: "config.metadata.namespace"},
		{name: "= in uid", mod: func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Uid = "a=b" }, field: "config.metadata.uid"},
		{name: "newline in name", mod: func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = "a\nb" }, field: "config.metadata.name"},
		{name: "overlong name", mod: func(c *runtimeapi.PodSandboxConfig) { c.Metadata.Name = strings.Repeat("a", 254) }, field: "config.metadata.name"},
		{name: "critest-style name", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Metadata.Name = "PodSandbox-for-create-test-5b7fe1a6-0e3c-4a25-8b7e-9d4b05a5f1f2"
		}},
		{name: "hostname with newline", mod: func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "web\n10.0.0.1 evil" }, field: "config.hostname"},
		{name: "hostname of 65 bytes", mod: func(c *runtimeapi.PodSandboxConfig) { c.Hostname = strings.Repeat("a", 60) + ".bcde" }, field: "config.hostname"},
		{name: "hostname of 64 bytes", mod: func(c *runtimeapi.PodSandboxConfig) { c.Hostname = strings.Repeat("a", 59) + ".bcde" }},
		{name: "hostname with underscore", mod: func(c *runtimeapi.PodSandboxConfig) { c.Hostname = "a_b" }, field: "config.hostname"},
		{name: "bad hostname ignored with host network", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Hostname = "not a name"
			c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
			c.Linux.Sysctls = nil
			c.PortMappings = nil
		}},
		{name: "relative log directory", mod: func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "logs" }, field: "config.log_directory"},
		{name: "log directory with ..", mod: func(c *runtimeapi.PodSandboxConfig) { c.LogDirectory = "/var/log/pods/../../etc" }, field: "config.log_directory"},
		{name: "nameserver with newline", mod: func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Servers = []string{"10.0.0.1\nnameserver 6.6.6.6"} }, field: "config.dns_config.servers[0]"},
		{name: "nameserver not an IP", mod: func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Servers = []string{"dns.example.com"} }, field: "config.dns_config.servers[0]"},
		{name: "kubelet's root search (no search domains)", mod: func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Searches = []string{"."} }},
		{name: "search label over 63 characters (from the host's resolv.conf)", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.DnsConfig.Searches = []string{strings.Repeat("a", 70) + ".example.com"}
		}},
		{name: "search with space", mod: func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Searches = []string{"a.com evil.com"} }, field: "config.dns_config.searches[0]"},
		{name: "search with newline", mod: func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Searches = []string{"a.com\noptions debug"} }, field: "config.dns_config.searches[0]"},
		{name: "33 searches", mod: func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Searches = make([]string, 33) }, field: "config.dns_config.searches"},
		{name: "option with newline", mod: func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Options = []string{"ndots:5\nnameserver 1.1.1.1"} }, field: "config.dns_config.options[0]"},
		{name: "option with space", mod: func(c *runtimeapi.PodSandboxConfig) { c.DnsConfig.Options = []string{"ndots:5 debug"} }, field: "config.dns_config.options[0]"},
		{name: "container port 0", mod: func(c *runtimeapi.PodSandboxConfig) { c.PortMappings[0].ContainerPort = 0 }, field: "config.port_mappings[0].container_port"},
		{name: "host port 65536", mod: func(c *runtimeapi.PodSandboxConfig) { c.PortMappings[0].HostPort = 65536 }, field: "config.port_mappings[0].host_port"},
		{name: "negative host port", mod: func(c *runtimeapi.PodSandboxConfig) { c.PortMappings[1].HostPort = -1 }, field: "config.port_mappings[1].host_port"},
		{name: "unknown protocol", mod: func(c *runtimeapi.PodSandboxConfig) { c.PortMappings[0].Protocol = 7 }, field: "config.port_mappings[0].protocol"},
		{name: "bad host IP", mod: func(c *runtimeapi.PodSandboxConfig) { c.PortMappings[0].HostIp = "localhost" }, field: "config.port_mappings[0].host_ip"},
		{name: "nil port mapping", mod: func(c *runtimeapi.PodSandboxConfig) { c.PortMappings = append(c.PortMappings, nil) }, field: "config.port_mappings[3]"},
		{name: "systemd parent under cgroupfs", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.CgroupParent = "kubepods-burstable-pod1.slice" }, field: "config.linux.cgroup_parent"},
		{name: "cgroup parent escaping", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.CgroupParent = "/kubepods/../../x" }, field: "config.linux.cgroup_parent"},
		{name: "slice under systemd", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.CgroupParent = "kubepods-burstable-pod1.slice" }, h: &Host{CgroupDriver: "systemd"}},
		{name: "cgroupfs path under systemd", mod: func(c *runtimeapi.PodSandboxConfig) {}, field: "config.linux.cgroup_parent", h: &Host{CgroupDriver: "systemd"}},
		{name: "kubelet's slice path under systemd", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.CgroupParent = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1_2.slice"
		}, h: &Host{CgroupDriver: "systemd"}},
		{name: "slice path that is not the slice's expansion", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.CgroupParent = "/system.slice/kubepods-burstable-pod1.slice"
		}, field: "config.linux.cgroup_parent", h: &Host{CgroupDriver: "systemd"}},
		{name: "bad slice under systemd", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.CgroupParent = "kubepods--x.slice" }, field: "config.linux.cgroup_parent", h: &Host{CgroupDriver: "systemd"}},
		{name: "node sysctl", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"kernel.panic": "1"} }, field: `config.linux.sysctls["kernel.panic"]`},
		{name: "vm sysctl", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"vm.overcommit_memory": "1"} }, field: `config.linux.sysctls["vm.overcommit_memory"]`},
		{name: "sysctl path traversal", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"net/../../../etc/passwd": "x"}
		}, field: "config.linux.sysctls"},
		{name: "sysctl value with newline", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"net.core.somaxconn": "1\n2"}
		}, field: "config.linux.sysctls"},
		{name: "net sysctl with host network", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
			c.Linux.Sysctls = map[string]string{"net.core.somaxconn": "1024"}
		}, field: `config.linux.sysctls["net.core.somaxconn"]`},
		{name: "ipc sysctl with host IPC", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Ipc = runtimeapi.NamespaceMode_NODE
			c.Linux.Sysctls = map[string]string{"kernel.shmmax": "1"}
		}, field: `config.linux.sysctls["kernel.shmmax"]`},
		{name: "UTS sysctl", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"kernel.domainname": "x"} }, field: "config.linux.sysctls"},
		{name: "pid TARGET on a pod", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_TARGET
		}, field: "config.linux.security_context.namespace_options.pid"},
		{name: "network CONTAINER", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_CONTAINER
		}, field: "config.linux.security_context.namespace_options.network"},
		{name: "group without user", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.SecurityContext.RunAsUser = nil }, field: "config.linux.security_context.run_as_group"},
		{name: "selinux type with a colon", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.SelinuxOptions = &runtimeapi.SELinuxOption{Type: "container_t:s0"}
		}, field: "config.linux.security_context.selinux_options.type"},
		{name: "selinux level with a newline", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.SelinuxOptions = &runtimeapi.SELinuxOption{Level: "s0:c1\nx"}
		}, field: "config.linux.security_context.selinux_options.level"},
		{name: "selinux options", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.SelinuxOptions = &runtimeapi.SELinuxOption{User: "system_u", Role: "system_r", Type: "container_t", Level: "s0:c1,c2"}
		}},
		{name: "uid out of range", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.SecurityContext.RunAsUser.Value = 1 << 31 }, field: "config.linux.security_context.run_as_user"},
		{name: "negative supplemental group", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.SecurityContext.SupplementalGroups = []int64{-1} }, field: "config.linux.security_context.supplemental_groups[0]"},
		{name: "seccomp Localhost path with a space", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/var/lib/kubelet/seccomp/my profile.json"}
		}},
		{name: "seccomp Localhost path with a newline", mod: func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/x\ny.json"}
		}, field: "config.linux.security_context.seccomp.localhost_ref"},
		{name: "unknown seccomp type", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.SecurityContext.Seccomp.ProfileType = 9 }, field: "config.linux.security_context.seccomp.profile_type"},
		{name: "negative cpu quota", mod: func(c *runtimeapi.PodSandboxConfig) { c.Linux.Resources.CpuQuota = -5 }, field: "config.linux.resources.cpu_quota"},
		{name: "huge annotations", mod: func(c *runtimeapi.PodSandboxConfig) { c.Annotations["big"] = strings.Repeat("x", 300<<10) }, field: "config.annotations"},
		{name: "empty label key", mod: func(c *runtimeapi.PodSandboxConfig) { c.Labels[""] = "x" }, field: "config.labels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg *runtimeapi.PodSandboxConfig
			if tc.name != "nil config" {
				cfg = goodPod()
			}
			if tc.mod != nil {
				tc.mod(cfg)
			}
			h := host
			if tc.h != nil {
				h = *tc.h
			}
			checkErr(t, PodSandbox(cfg, h), tc.field)
		})
	}
}

func TestPodUserNamespace(t *testing.T) {
	m := func(c, h, l uint32) []*runtimeapi.IDMapping {
		return []*runtimeapi.IDMapping{{ContainerId: c, HostId: h, Length: l}}
	}
	good := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m(0, 65536, 65536), Gids: m(0, 65536, 65536)}
	cases := []struct {
		name  string
		u     *runtimeapi.UserNamespace
		mod   func(*runtimeapi.NamespaceOption)
		field string
	}{
		{name: "pod", u: good},
		{name: "node", u: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}},
		{name: "node with mappings", u: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE, Uids: m(0, 1000, 10)}, field: "userns_options"},
		{name: "container mode", u: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_CONTAINER}, field: "userns_options.mode"},
		{name: "target mode", u: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_TARGET}, field: "userns_options.mode"},
		{name: "no mappings", u: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD}, field: "userns_options.uids"},
		{name: "two uid mappings", u: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: append(m(0, 1000, 10), m(10, 2000, 10)...), Gids: good.Gids}, field: "userns_options.uids"},
		{name: "root not mapped", u: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m(1, 1000, 100000), Gids: good.Gids}, field: "userns_options.uids[0].container_id"},
		{name: "host root", u: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: good.Uids, Gids: m(0, 0, 65536)}, field: "userns_options.gids[0].host_id"},
		{name: "empty range", u: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m(0, 1000, 0), Gids: good.Gids}, field: "userns_options.uids[0].length"},
		{name: "past uid_t", u: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m(0, 1<<32-10, 100), Gids: good.Gids}, field: "userns_options.uids[0]"},
		{name: "with host network", u: good, mod: func(n *runtimeapi.NamespaceOption) { n.Network = runtimeapi.NamespaceMode_NODE }, field: "namespace_options.network"},
		{name: "with host pid", u: good, mod: func(n *runtimeapi.NamespaceOption) { n.Pid = runtimeapi.NamespaceMode_NODE }, field: "namespace_options.pid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := goodPod()
			ns := cfg.Linux.SecurityContext.NamespaceOptions
			ns.UsernsOptions = tc.u
			if tc.mod != nil {
				tc.mod(ns)
				cfg.Linux.Sysctls = nil
			}
			err := PodSandbox(cfg, host)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("got %v, want InvalidArgument naming %s", err, tc.field)
			}
		})
	}
}

func goodContainer() *runtimeapi.ContainerConfig {
	return &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: "app", Attempt: 2},
		Image:      &runtimeapi.ImageSpec{Image: "sha256:4c3b2a1f"},
		Command:    []string{"/bin/sh", "-c"},
		Args:       []string{"echo hi"},
		WorkingDir: "/srv",
		Envs:       []*runtimeapi.KeyValue{{Key: "A", Value: []byte("multi\nline")}},
		Mounts: []*runtimeapi.Mount{
			{ContainerPath: "/data", HostPath: "/var/lib/kubelet/pods/x/volumes/data", Propagation: runtimeapi.MountPropagation_PROPAGATION_PRIVATE},
			{ContainerPath: "/proc/meminfo", HostPath: "/var/lib/lxcfs/proc/meminfo", Readonly: true},
			{ContainerPath: "/host/proc", HostPath: "/proc", Readonly: true},
		},
		Devices: []*runtimeapi.Device{{HostPath: "/dev/fuse", ContainerPath: "/dev/fuse", Permissions: "rwm"}},
		LogPath: "app/2.log",
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources: &runtimeapi.LinuxContainerResources{CpuShares: 2, CpuQuota: 1000, CpusetCpus: "0-1", CpusetMems: "0", OomScoreAdj: 1000,
				HugepageLimits: []*runtimeapi.HugepageLimit{{PageSize: "2MB"}, {PageSize: "1GB", Limit: 1 << 30}}},
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				Capabilities:     &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN", "cap_sys_time"}, DropCapabilities: []string{"ALL"}},
				NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER},
				RunAsUsername:    "nobody",
				RunAsGroup:       &runtimeapi.Int64Value{Value: 65534},
				MaskedPaths:      []string{"/proc/kcore"},
				ReadonlyPaths:    []string{"/proc/sys"},
			},
		},
	}
}

func TestContainer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mod   func(c *runtimeapi.ContainerConfig)
		field string
		h     *Host
	}{
		{name: "kubelet-style container"},
		{name: "no metadata", mod: func(c *runtimeapi.ContainerConfig) { c.Metadata = nil }, field: "config.metadata"},
		{name: "empty name", mod: func(c *runtimeapi.ContainerConfig) { c.Metadata.Name = "" }, field: "config.metadata.name"},
		{name: "no image", mod: func(c *runtimeapi.ContainerConfig) { c.Image = nil }, field: "config.image.image"},
		{name: "image with newline", mod: func(c *runtimeapi.ContainerConfig) { c.Image.Image = "busybox\n" }, field: "config.image.image"},
		{name: "NUL in args", mod: func(c *runtimeapi.ContainerConfig) { c.Args = []string{"a\x00b"} }, field: "config.args[0]"},
		{name: "one argument over MAX_ARG_STRLEN", mod: func(c *runtimeapi.ContainerConfig) { c.Args = []string{strings.Repeat("a", 128<<10)} }, field: "config.args[0]"},
		{name: "one env entry over MAX_ARG_STRLEN", mod: func(c *runtimeapi.ContainerConfig) {
			c.Envs = append(c.Envs, &runtimeapi.KeyValue{Key: "BIG", Value: []byte(strings.Repeat("v", 128<<10))})
		}, field: "config.envs[1]"},
		{name: "1.5 MiB of environment (envFrom)", mod: func(c *runtimeapi.ContainerConfig) {
			for i := range 15 {
				c.Envs = append(c.Envs, &runtimeapi.KeyValue{Key: fmt.Sprintf("K%d", i), Value: []byte(strings.Repeat("v", 100<<10))})
			}
		}},
		{name: "image volume with a sub path", mod: func(c *runtimeapi.ContainerConfig) {
			c.Mounts[0] = &runtimeapi.Mount{ContainerPath: "/models", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "registry.k8s.io/models:1"}, ImageSubPath: "llm/weights"}
		}},
		{name: "image volume sub path escaping", mod: func(c *runtimeapi.ContainerConfig) {
			c.Mounts[0] = &runtimeapi.Mount{ContainerPath: "/models", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "models:1"}, ImageSubPath: "../../etc"}
		}, field: "config.mounts[0].image_sub_path"},
		{name: "image volume not read-only", mod: func(c *runtimeapi.ContainerConfig) {
			c.Mounts[0] = &runtimeapi.Mount{ContainerPath: "/models", Image: &runtimeapi.ImageSpec{Image: "models:1"}}
		}, field: "config.mounts[0].readonly"},
		{name: "image volume absolute sub path", mod: func(c *runtimeapi.ContainerConfig) {
			c.Mounts[0] = &runtimeapi.Mount{ContainerPath: "/models", Readonly: true, Image: &runtimeapi.ImageSpec{Image: "models:1"}, ImageSubPath: "/etc"}
		}, field: "config.mounts[0].image_sub_path"},
		{name: "mount path with .. (cleaned, inside the rootfs)", mod: func(c *runtimeapi.ContainerConfig) { c.Mounts[0].ContainerPath = "/data/../cache" }},
		{name: "= in env key", mod: func(c *runtimeapi.ContainerConfig) { c.Envs[0].Key = "A=B" }, field: "config.envs[0].key"},
		{name: "relative working dir", mod: func(c *runtimeapi.ContainerConfig) { c.WorkingDir = "srv" }, field: "config.working_dir"},
		{name: "log path escaping", mod: func(c *runtimeapi.ContainerConfig) { c.LogPath = "../../etc/cron.d/x" }, field: "config.log_path"},
		{name: "absolute log path", mod: func(c *runtimeapi.ContainerConfig) { c.LogPath = "/etc/passwd" }, field: "config.log_path"},
		{name: "host /proc over /proc", mod: func(c *runtimeapi.ContainerConfig) {
			c.Mounts = append(c.Mounts, &runtimeapi.Mount{ContainerPath: "/proc", HostPath: "/proc"})
		}, field: "config.mounts[3].container_path"},
		{name: "mount under /proc/sys", mod: func(c *runtimeapi.ContainerConfig) {
			c.Mounts = append(c.Mounts, &runtimeapi.Mount{ContainerPath: "/proc/sys/kernel", HostPath: "/tmp/x"})
		}, field: "config.mounts[3].container_path"},
		{name: "mount over /", mod: func(c *runtimeapi.ContainerConfig) {
			c.Mounts = append(c.Mounts, &runtimeapi.Mount{ContainerPath: "/", HostPath: "/"})
		}, field: "config.mounts[3].container_path"},
		{name: "relative host path", mod: func(c *runtimeapi.ContainerConfig) { c.Mounts[0].HostPath = "data" }, field: "config.mounts[0].host_path"},
		{name: "host path with ..", mod: func(c *runtimeapi.ContainerConfig) { c.Mounts[0].HostPath = "/var/../etc" }, field: "config.mounts[0].host_path"},
		{name: "two mounts at one place", mod: func(c *runtimeapi.ContainerConfig) {
			c.Mounts = append(c.Mounts, &runtimeapi.Mount{ContainerPath: "/data/", HostPath: "/tmp"})
		}, field: "config.mounts[3].container_path"},
		{name: "unknown propagation", mod: func(c *runtimeapi.ContainerConfig) { c.Mounts[0].Propagation = 9 }, field: "config.mounts[0].propagation"},
		{name: "relative device", mod: func(c *runtimeapi.ContainerConfig) { c.Devices[0].HostPath = "dev/fuse" }, field: "config.devices[0].host_path"},
		{name: "unknown capability", mod: func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.Capabilities.AddCapabilities = []string{"CAP_EVERYTHING"}
		}, field: "config.linux.security_context.capabilities.add_capabilities[0]"},
		{name: "group without user", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.SecurityContext.RunAsUsername = "" }, field: "config.linux.security_context.run_as_group"},
		{name: "TARGET without target", mod: func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Pid = runtimeapi.NamespaceMode_TARGET
		}, field: "config.linux.security_context.namespace_options.target_id"},
		{name: "relative masked path", mod: func(c *runtimeapi.ContainerConfig) {
			c.Linux.SecurityContext.MaskedPaths = []string{"proc/kcore"}
		}, field: "config.linux.security_context.masked_paths[0]"},
		{name: "cpu quota -5", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpuQuota = -5 }, field: "config.linux.resources.cpu_quota"},
		{name: "cpu quota -1 (unlimited)", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpuQuota = -1 }},
		{name: "cpu quota 999", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpuQuota = 999 }, field: "config.linux.resources.cpu_quota"},
		{name: "cpu period 2s", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpuPeriod = 2000000 }, field: "config.linux.resources.cpu_period"},
		{name: "cpu shares 1", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpuShares = 1 }, field: "config.linux.resources.cpu_shares"},
		{name: "negative memory", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.MemoryLimitInBytes = -1 }, field: "config.linux.resources.memory_limit_in_bytes"},
		{name: "swap below memory", mod: func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources.MemoryLimitInBytes, c.Linux.Resources.MemorySwapLimitInBytes = 1<<30, 1<<20
		}, field: "config.linux.resources.memory_swap_limit_in_bytes"},
		{name: "oom score 1001", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.OomScoreAdj = 1001 }, field: "config.linux.resources.oom_score_adj"},
		{name: "garbage cpuset", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpusetCpus = "zero-one" }, field: "config.linux.resources.cpuset_cpus"},
		{name: "reversed cpuset", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpusetCpus = "1-0" }, field: "config.linux.resources.cpuset_cpus"},
		{name: "absent cpu", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpusetCpus = "0,7" }, field: "config.linux.resources.cpuset_cpus"},
		{name: "absent cpu, host unknown", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpusetCpus = "0,7" }, h: &Host{}},
		{name: "absent memory node", mod: func(c *runtimeapi.ContainerConfig) { c.Linux.Resources.CpusetMems = "1" }, field: "config.linux.resources.cpuset_mems"},
		{name: "bad hugepage size", mod: func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources.HugepageLimits[0].PageSize = "2M"
		}, field: "config.linux.resources.hugepage_limits[0].page_size"},
		{name: "unified on cgroup v1", mod: func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources.Unified = map[string]string{"memory.high": "1"}
		}, field: "config.linux.resources.unified"},
		{name: "unified on cgroup v2", mod: func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources.Unified = map[string]string{"memory.high": "1", "io.max": "8:0 rbps=1048576", "memory.oom.group": "1"}
		}, h: &Host{CgroupV2: true}},
		{name: "unified path traversal", mod: func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources.Unified = map[string]string{"../../release_agent": "x"}
		}, field: "config.linux.resources.unified", h: &Host{CgroupV2: true}},
		{name: "unified cgroup.procs", mod: func(c *runtimeapi.ContainerConfig) {
			c.Linux.Resources.Unified = map[string]string{"cgroup.procs": "1"}
		}, field: "config.linux.resources.unified", h: &Host{CgroupV2: true}},
		{name: "unknown stop signal", mod: func(c *runtimeapi.ContainerConfig) { c.StopSignal = 999 }, field: "config.stop_signal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := goodContainer()
			if tc.mod != nil {
				tc.mod(cfg)
			}
			h := host
			if tc.h != nil {
				h = *tc.h
			}
			checkErr(t, Container(cfg, h), tc.field)
		})
	}
}

func checkErr(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("valid config refused: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted; want InvalidArgument naming %s", field)
	}
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("error %v is not InvalidArgument", err)
	}
	if !strings.HasPrefix(err.Error(), field) {
		t.Errorf("error %q does not start with the field %s", err, field)
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]string{"0": "[0]", "0-3,6": "[0 1 2 3 6]", "2,1,1-2": "[1 2]", " 0-1\n": "[0 1]"} {
		if got, err := ParseCPUList(in); err != nil || fmt.Sprint(got) != want {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1-", "a", "0-9000", "1,,2", "3-1", "+1"} {
		if _, err := ParseCPUList(bad); err == nil {
			t.Errorf("ParseCPUList(%q) accepted", bad)
		}
	}
}

func TestNormalizeSysctl(t *testing.T) {
	for in, want := range map[string]string{
		"net.ipv4.ip_forward":               "net.ipv4.ip_forward",
		"net/ipv4/conf/eth0.100/forwarding": "net.ipv4.conf.eth0/100.forwarding",
	} {
		if got := NormalizeSysctl(in); got != want {
			t.Errorf("NormalizeSysctl(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckpointLocation(t *testing.T) {
	dir := t.TempDir()
	for loc, ok := range map[string]bool{
		filepath.Join(dir, "c.tar"):   true,
		"":                            false,
		"rel/c.tar":                   false,
		dir + "/../x/c.tar":           false,
		"/no/such/dir/c.tar":          false,
		dir:                           false,
		filepath.Join(dir, "c\n.tar"): false,
	} {
		if err := CheckpointLocation("location", loc); (err == nil) != ok {
			t.Errorf("CheckpointLocation(%q) = %v, want ok=%v", loc, err, ok)
		}
	}
}
