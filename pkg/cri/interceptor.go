package cri

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"

	"github.com/keelson/keelson/pkg/metrics"
)

// Verbosity of call logs: reads are frequent (kubelet relists every second), so they
// log only at a higher level than calls that change something.
const (
	vMutation = 2
	vRead     = 4
	vBodies   = 6
)

// readOnly lists the RPCs that change nothing.
var readOnly = map[string]bool{
	"Version": true, "Status": true, "RuntimeConfig": true,
	"ListPodSandbox": true, "PodSandboxStatus": true, "ListContainers": true, "ContainerStatus": true,
	"ContainerStats": true, "ListContainerStats": true, "PodSandboxStats": true, "ListPodSandboxStats": true,
	"ListMetricDescriptors": true, "ListPodSandboxMetrics": true,
	"ListImages": true, "ImageStatus": true, "ImageFsInfo": true,
}

func shortMethod(full string) string { return full[strings.LastIndexByte(full, '/')+1:] }

// UnaryInterceptor logs and times every call, turns a panic into Internal, and maps
// errdefs / context errors to gRPC status codes.
func UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	method := shortMethod(info.FullMethod)
	start := time.Now()
	if klog.V(vBodies).Enabled() {
		klog.InfoS("CRI call", "method", method, "request", redact(req))
	}
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(fmt.Errorf("panic: %v", r), "CRI handler panicked", "method", method, "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "%s: internal error (panic: %v); see keelson's log", method, r)
		}
		took := time.Since(start)
		logCall(method, took, err, resp)
		metrics.CRIRequestDuration.WithLabelValues(method, status.Code(err).String()).Observe(took.Seconds())
	}()
	resp, err = handler(ctx, req)
	return resp, ToStatus(err)
}

// StreamInterceptor does for streaming RPCs what UnaryInterceptor does.
func StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	method := shortMethod(info.FullMethod)
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(fmt.Errorf("panic: %v", r), "CRI stream handler panicked", "method", method, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "%s: internal error (panic: %v); see keelson's log", method, r)
		}
		logCall(method, time.Since(start), err, nil)
	}()
	return ToStatus(handler(srv, ss))
}

func logCall(method string, took time.Duration, err error, resp any) {
	code := status.Code(err)
	switch code {
	case codes.OK:
		v := klog.Level(vMutation)
		if readOnly[method] {
			v = vRead
		}
		if klog.V(v).Enabled() {
			klog.InfoS("CRI call done", "method", method, "took", took, "code", code)
		}
		if resp != nil && klog.V(vBodies).Enabled() {
			klog.InfoS("CRI response", "method", method, "response", redact(resp))
		}
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unavailable, codes.DeadlineExceeded:
		klog.ErrorS(err, "CRI call failed", "method", method, "took", took, "code", code)
	default:
		// Expected failures (NotFound on a status poll, a bad request): not our error.
		klog.V(vMutation).InfoS("CRI call failed", "method", method, "took", took, "code", code, "err", err)
	}
}

// ToStatus maps an error to a gRPC status error: errors that already carry a status
// keep it; errdefs kinds and context errors map to their codes (errgrpc); anything
// else becomes Unknown with its message.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err
	}
	mapped := errgrpc.ToGRPC(err)
	if _, ok := status.FromError(mapped); ok {
		return mapped
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}
