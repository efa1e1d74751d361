package container

import (
	"errors"
	"testing"
)

func TestShimWentAway(t *testing.T) {
	for msg, want := range map[string]bool{
		"failed to start shim: start failed: failed to create TTRPC connection: dial unix /run/s/6a1b: connect: connection refused": true,
		"failed to start shim: start failed: dial unix /run/s/6a1b: connect: no such file or directory":                             true,
		"failed to start shim: exec: \"containerd-shim-runc-v2\": executable file not found in $PATH":                               false,
		"OCI runtime create failed: runc create failed: unable to start container process: connection refused":                      false,
		"failed to create shim task: ttrpc: closed":                                                                                 true,
		"ttrpc: closed": false,
	} {
		if got := shimWentAway(errors.New(msg)); got != want {
			t.Errorf("shimWentAway(%q) = %v, want %v", msg, got, want)
		}
	}
}
