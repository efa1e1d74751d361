package cri

import (
	"context"
	"encoding/json"

	"github.com/containerd/errdefs"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageStatus describes one image from memory; a missing image is an empty answer,
// not an error (kubelet then pulls it).
func (s *Server) ImageStatus(ctx context.Context, r *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := r.GetImage().GetImage()
	img, err := s.Images.Get(ref)
	if err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	resp := &runtimeapi.ImageStatusResponse{}
	if img != nil {
		resp.Image = s.toCRIImage(img)
		if r.GetVerbose() {
			resp.Info = imageVerboseInfo(img, resp.Image.Pinned)
		}
	}
	// A pull of it in progress: how far it has come (keelson images pull shows it).
	if p, ok := s.Images.PullProgress(ref); ok && r.GetVerbose() {
		if resp.Info == nil {
			resp.Info = map[string]string{}
		}
		b, _ := json.Marshal(p)
		resp.Info["pullProgress"] = string(b)
	}
	return resp, nil
}
