package cni

import (
	"reflect"
	"testing"
)

func TestSplitRule(t *testing.T) {
	line := `CNI-DN-abc -s 10.77.0.0/16 -p tcp -m comment --comment "dnat name: \"keelson\" id: \"0123\"" -m tcp --dport 8080 -j DNAT`
	got := SplitRule(line)
	want := []string{"CNI-DN-abc", "-s", "10.77.0.0/16", "-p", "tcp", "-m", "comment", "--comment", `dnat name: "keelson" id: "0123"`, "-m", "tcp", "--dport", "8080", "-j", "DNAT"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SplitRule =\n%q\nwant\n%q", got, want)
	}
	if got := SplitRule(`X -m comment --comment ""`); len(got) != 5 || got[4] != "" {
		t.Errorf("empty quoted argument lost: %q", got)
	}
}
