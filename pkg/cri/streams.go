package cri

import (
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// defaultStreamChunkBytes bounds one message of a Stream* answer when the server
// has no StreamChunkBytes: well under gRPC's default 4 MiB receive limit.
const defaultStreamChunkBytes = 2 << 20

// The Stream* RPCs (KEP-5825) answer what their List counterparts answer, in as
// many messages as it takes to keep each under the chunk size: kubelet uses them
// when a node holds more than one message can carry. Each answer has at least
// one message.

func (s *Server) chunkBytes() int {
	if s.StreamChunkBytes > 0 {
		return s.StreamChunkBytes
	}
	return defaultStreamChunkBytes
}

// sendChunked sends items in groups whose encoded size stays under limit (an item
// larger than the limit goes alone).
func sendChunked[T proto.Message](items []T, limit int, send func([]T) error) error {
	start, size := 0, 0
	for i, it := range items {
		n := proto.Size(it) + 8 // the field's tag and length
		if i > start && size+n > limit {
			if err := send(items[start:i]); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += n
	}
	if start < len(items) || len(items) == 0 {
		return send(items[start:])
	}
	return nil
}

func (s *Server) StreamPodSandboxes(r *runtimeapi.StreamPodSandboxesRequest, stream runtimeapi.RuntimeService_StreamPodSandboxesServer) error {
	resp, err := s.ListPodSandbox(stream.Context(), &runtimeapi.ListPodSandboxRequest{Filter: r.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunked(resp.Items, s.chunkBytes(), func(c []*runtimeapi.PodSandbox) error {
		return stream.Send(&runtimeapi.StreamPodSandboxesResponse{PodSandboxes: c})
	})
}

func (s *Server) StreamContainers(r *runtimeapi.StreamContainersRequest, stream runtimeapi.RuntimeService_StreamContainersServer) error {
	resp, err := s.ListContainers(stream.Context(), &runtimeapi.ListContainersRequest{Filter: r.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunked(resp.Containers, s.chunkBytes(), func(c []*runtimeapi.Container) error {
		return stream.Send(&runtimeapi.StreamContainersResponse{Containers: c})
	})
}

func (s *Server) StreamContainerStats(r *runtimeapi.StreamContainerStatsRequest, stream runtimeapi.RuntimeService_StreamContainerStatsServer) error {
	resp, err := s.ListContainerStats(stream.Context(), &runtimeapi.ListContainerStatsRequest{Filter: r.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunked(resp.Stats, s.chunkBytes(), func(c []*runtimeapi.ContainerStats) error {
		return stream.Send(&runtimeapi.StreamContainerStatsResponse{ContainerStats: c})
	})
}

func (s *Server) StreamPodSandboxStats(r *runtimeapi.StreamPodSandboxStatsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxStatsServer) error {
	resp, err := s.ListPodSandboxStats(stream.Context(), &runtimeapi.ListPodSandboxStatsRequest{Filter: r.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunked(resp.Stats, s.chunkBytes(), func(c []*runtimeapi.PodSandboxStats) error {
		return stream.Send(&runtimeapi.StreamPodSandboxStatsResponse{PodSandboxStats: c})
	})
}

func (s *Server) StreamPodSandboxMetrics(r *runtimeapi.StreamPodSandboxMetricsRequest, stream runtimeapi.RuntimeService_StreamPodSandboxMetricsServer) error {
	resp, err := s.ListPodSandboxMetrics(stream.Context(), &runtimeapi.ListPodSandboxMetricsRequest{})
	if err != nil {
		return err
	}
	return sendChunked(resp.PodMetrics, s.chunkBytes(), func(c []*runtimeapi.PodSandboxMetrics) error {
		return stream.Send(&runtimeapi.StreamPodSandboxMetricsResponse{PodSandboxMetrics: c})
	})
}

func (s *Server) StreamImages(r *runtimeapi.StreamImagesRequest, stream runtimeapi.ImageService_StreamImagesServer) error {
	resp, err := s.ListImages(stream.Context(), &runtimeapi.ListImagesRequest{Filter: r.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunked(resp.Images, s.chunkBytes(), func(c []*runtimeapi.Image) error {
		return stream.Send(&runtimeapi.StreamImagesResponse{Images: c})
	})
}
