package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/test/harness"
	"github.com/keelson/keelson/test/images"
)

// otlpReceiver is an OTLP/gRPC trace collector keeping every span it is sent.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// trace returns the spans of one trace by name (the first of each name).
func (r *otlpReceiver) trace(traceID []byte) map[string]*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]*tracepb.Span{}
	for _, s := range r.spans {
		if string(s.GetTraceId()) == string(traceID) {
			if _, dup := out[s.GetName()]; !dup {
				out[s.GetName()] = s
			}
		}
	}
	return out
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, a RunPodSandbox sent in a trace (W3C
// traceparent in the gRPC metadata, as kubelet sends it) becomes a span of that
// trace, with a child span per step of the pod's creation, CNI ADD under the network
// step, and keelson's containerd calls as spans too.
func TestTracing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	recv := &otlpReceiver{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, recv)
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()
	k := startWithRegistry(t, reg, func(o *harness.Options) {
		o.Env = []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + l.Addr().String(), "OTEL_EXPORTER_OTLP_INSECURE=true", "OTEL_BSP_SCHEDULE_DELAY=100"}
	})

	traceID, parentID := make([]byte, 16), make([]byte, 8)
	_, _ = rand.Read(traceID)
	_, _ = rand.Read(parentID)
	ctx := metadata.AppendToOutgoingContext(harness.Ctx(t), "traceparent", fmt.Sprintf("00-%x-%x-01", traceID, parentID))
	cfg := podConfig(k, "traced")
	run, err := k.Runtime.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer stopAndRemovePod(t, k, run.PodSandboxId)

	const server = "runtime.v1.RuntimeService/RunPodSandbox"
	steps := []string{"sandbox.run.label", "sandbox.run.network.start", "sandbox.run.spec", "sandbox.run.files.prepare",
		"sandbox.run.network.await", "sandbox.run.files.write", "sandbox.run.record"}
	var spans map[string]*tracepb.Span
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		spans = recv.trace(traceID)
		if spans[server] != nil && spans["cni.add"] != nil && spans["sandbox.run.record"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trace %x did not arrive whole; spans of it: %v", traceID, names(spans))
		}
	}
	root := spans[server]
	if hex.EncodeToString(root.GetParentSpanId()) != hex.EncodeToString(parentID) {
		t.Errorf("the RunPodSandbox span's parent is %x, want the caller's span %x", root.GetParentSpanId(), parentID)
	}
	for _, name := range steps {
		s := spans[name]
		if s == nil {
			t.Errorf("no %s span", name)
			continue
		}
		if string(s.GetParentSpanId()) != string(root.GetSpanId()) {
			t.Errorf("%s is not a child of the RunPodSandbox span", name)
		}
	}
	if cni, net := spans["cni.add"], spans["sandbox.run.network.start"]; net != nil && string(cni.GetParentSpanId()) != string(net.GetSpanId()) {
		t.Error("cni.add is not a child of the network step")
	}
	var containerd bool
	for name := range spans {
		containerd = containerd || strings.HasPrefix(name, "containerd.services.")
	}
	if !containerd {
		t.Errorf("no span of a containerd call in the trace: %v", names(spans))
	}

	// A container's creation and start: a span per step under each call's span.
	mustPull(t, k, images.Busybox)
	traceID2 := make([]byte, 16)
	_, _ = rand.Read(traceID2)
	ctx = metadata.AppendToOutgoingContext(harness.Ctx(t), "traceparent", fmt.Sprintf("00-%x-%x-01", traceID2, parentID))
	created, err := k.Runtime.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: run.PodSandboxId, Config: ctrConfig("traced", images.Busybox, "sleep", "1000"), SandboxConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Runtime.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Fatal(err)
	}
	parents := map[string]string{
		"container.create.spec": "runtime.v1.RuntimeService/CreateContainer", "container.create.record": "runtime.v1.RuntimeService/CreateContainer",
		"container.start.task": "runtime.v1.RuntimeService/StartContainer", "container.start.process": "runtime.v1.RuntimeService/StartContainer",
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		spans = recv.trace(traceID2)
		if spans["container.start.process"] != nil && spans["runtime.v1.RuntimeService/StartContainer"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container trace %x did not arrive whole; spans of it: %v", traceID2, names(spans))
		}
	}
	for step, parent := range parents {
		if s, p := spans[step], spans[parent]; s == nil || p == nil || string(s.GetParentSpanId()) != string(p.GetSpanId()) {
			t.Errorf("%s is missing or not a child of %s: %v", step, parent, names(spans))
		}
	}
}

func names(spans map[string]*tracepb.Span) []string {
	var out []string
	for n := range spans {
		out = append(out, n)
	}
	return out
}
