package cri

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"nil", nil, codes.OK},
		{"invalid argument wrapped", fmt.Errorf("metadata.name is empty: %w", errdefs.ErrInvalidArgument), codes.InvalidArgument},
		{"not found wrapped twice", fmt.Errorf("sandbox: %w", fmt.Errorf("x: %w", errdefs.ErrNotFound)), codes.NotFound},
		{"already a status", status.Error(codes.FailedPrecondition, "stopped"), codes.FailedPrecondition},
		{"wrapped status", fmt.Errorf("calling: %w", status.Error(codes.Unavailable, "down")), codes.Unavailable},
		{"deadline", fmt.Errorf("pull: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{"canceled", context.Canceled, codes.Canceled},
		{"plain", errors.New("boom"), codes.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ToStatus(tt.err)
			if status.Code(got) != tt.want {
				t.Errorf("code = %v, want %v (err %v)", status.Code(got), tt.want, got)
			}
			if tt.err != nil && status.Convert(got).Message() == "" {
				t.Errorf("message lost")
			}
		})
	}
}

func TestUnaryInterceptorRecoversPanic(t *testing.T) {
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/RunPodSandbox"}
	resp, err := UnaryInterceptor(context.Background(), nil, info, func(ctx context.Context, req any) (any, error) {
		var m map[string]int
		m["x"] = 1 // panics
		return "unreachable", nil
	})
	if resp != nil || status.Code(err) != codes.Internal {
		t.Fatalf("resp=%v err=%v, want nil and Internal", resp, err)
	}
	_, err = UnaryInterceptor(context.Background(), nil, info, func(ctx context.Context, req any) (any, error) {
		return nil, fmt.Errorf("pod: %w", errdefs.ErrNotFound)
	})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("err=%v, want NotFound", err)
	}
}

func TestRedact(t *testing.T) {
	req := &runtimeapi.PullImageRequest{
		Image: &runtimeapi.ImageSpec{Image: "registry.example/app:1"},
		Auth:  &runtimeapi.AuthConfig{Username: "bob", Password: "hunter2", Auth: "Ym9iOmh1bnRlcjI=", IdentityToken: "idtok", RegistryToken: "regtok"},
	}
	got := fmt.Sprint(redact(req))
	for _, secret := range []string{"hunter2", "Ym9iOmh1bnRlcjI=", "idtok", "regtok"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q logged: %s", secret, got)
		}
	}
	if !strings.Contains(got, "bob") || !strings.Contains(got, "registry.example/app:1") {
		t.Errorf("non-secret fields lost: %s", got)
	}
	if req.Auth.Password != "hunter2" {
		t.Error("the request itself was changed")
	}
	create := &runtimeapi.CreateContainerRequest{Config: &runtimeapi.ContainerConfig{
		Envs: []*runtimeapi.KeyValue{{Key: "DB_PASSWORD", Value: []byte("s3cret")}},
	}}
	got = fmt.Sprint(redact(create))
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "DB_PASSWORD") {
		t.Errorf("env: %s", got)
	}
}
