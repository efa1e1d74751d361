package cri

import (
	"context"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListImages lists images from memory, optionally only the one a filter names.
func (s *Server) ListImages(ctx context.Context, r *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	if ref := r.GetFilter().GetImage().GetImage(); ref != "" {
		img, err := s.Images.Get(ref)
		if errdefs.IsNotFound(err) {
			return &runtimeapi.ListImagesResponse{}, nil
		}
		if err != nil {
			return nil, err
		}
		return &runtimeapi.ListImagesResponse{Images: []*runtimeapi.Image{s.toCRIImage(img)}}, nil
	}
	all := s.Images.List()
	out := make([]*runtimeapi.Image, 0, len(all))
	for _, img := range all {
		out = append(out, s.toCRIImage(img))
	}
	return &runtimeapi.ListImagesResponse{Images: out}, nil
}
