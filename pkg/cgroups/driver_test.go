package cgroups

import "testing"

func TestPathAndDir(t *testing.T) {
	for _, tc := range []struct{ driver, parent, id, path, dir string }{
		{Cgroupfs, "/kubepods/burstable/pod1", "abc", "/kubepods/burstable/pod1/abc", "/kubepods/burstable/pod1/abc"},
		{Cgroupfs, "", "abc", "", ""},
		{Systemd, "kubepods-burstable-pod1.slice", "abc", "kubepods-burstable-pod1.slice:keelson:abc",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/keelson-abc.scope"},
		{Systemd, "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice", "abc", "kubepods-burstable-pod1.slice:keelson:abc",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/keelson-abc.scope"},
		{Systemd, "", "abc", "system.slice:keelson:abc", "/system.slice/keelson-abc.scope"},
		{Systemd, "-.slice", "abc", "-.slice:keelson:abc", "/keelson-abc.scope"},
	} {
		if got := Path(tc.driver, tc.parent, tc.id); got != tc.path {
			t.Errorf("Path(%s, %q) = %q, want %q", tc.driver, tc.parent, got, tc.path)
		}
		if got := Dir(tc.path); got != tc.dir {
			t.Errorf("Dir(%q) = %q, want %q", tc.path, got, tc.dir)
		}
	}
}

func TestOOMKillCount(t *testing.T) {
	for in, want := range map[string]int{
		"low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n": 1,
		"oom_kill_disable 0\nunder_oom 0\noom_kill 3\n":               3,
		"low 0\n": -1,
	} {
		n, ok := oomKillCount(in)
		if want < 0 && ok || want >= 0 && (!ok || n != want) {
			t.Errorf("oomKillCount(%q) = %d %v, want %d", in, n, ok, want)
		}
	}
}
