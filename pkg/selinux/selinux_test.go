package selinux

import (
	"slices"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerLabelsFromThePods(t *testing.T) {
	pod := Labels{Process: "system_u:system_r:container_t:s0:c1,c2", Mount: "system_u:object_r:container_file_t:s0:c1,c2"}
	for _, tc := range []struct {
		name string
		opt  *runtimeapi.SELinuxOption
		want Labels
	}{
		{"no options: the pod's", nil, pod},
		{"a type", &runtimeapi.SELinuxOption{Type: "spc_t"}, Labels{"system_u:system_r:spc_t:s0:c1,c2", pod.Mount}},
		{"a level reaches the mounts too", &runtimeapi.SELinuxOption{Level: "s0:c7,c9"},
			Labels{"system_u:system_r:container_t:s0:c7,c9", "system_u:object_r:container_file_t:s0:c7,c9"}},
		{"user and role", &runtimeapi.SELinuxOption{User: "user_u", Role: "user_r"},
			Labels{"user_u:user_r:container_t:s0:c1,c2", "user_u:object_r:container_file_t:s0:c1,c2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := derive(pod, tc.opt)
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestInitOptions(t *testing.T) {
	got := options(&runtimeapi.SELinuxOption{User: "u", Type: "t", Level: "s0:c1"})
	slices.Sort(got)
	if !slices.Equal(got, []string{"level:s0:c1", "type:t", "user:u"}) {
		t.Errorf("options %v", got)
	}
	if options(nil) != nil {
		t.Errorf("options(nil) = %v", options(nil))
	}
}

// Where SELinux is off (these CI machines), options change nothing.
func TestDisabledHost(t *testing.T) {
	h := Host{}
	if h.Enabled() {
		t.Skip("SELinux is enabled here")
	}
	l, err := h.Pod(&runtimeapi.SELinuxOption{Type: "container_t", Level: "s0:c1,c2"})
	if err != nil || l != (Labels{}) {
		t.Errorf("pod labels %+v, %v", l, err)
	}
	if c, err := h.Container(l, &runtimeapi.SELinuxOption{Type: "spc_t"}); err != nil || c != (Labels{}) {
		t.Errorf("container labels %+v, %v", c, err)
	}
	if err := h.Relabel(t.TempDir(), l, false); err != nil {
		t.Errorf("relabel: %v", err)
	}
}
