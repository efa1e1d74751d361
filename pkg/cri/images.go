package cri

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/pkg/images"
)

// ImageService is what the image RPCs need of pkg/images.
type ImageService interface {
	Pull(ctx context.Context, ref string, auth *images.Auth) (*images.Image, error)
	Get(ref string) (*images.Image, error)
	List() []*images.Image
	Remove(ctx context.Context, ref string) error
	FsUsage() images.FsUsage
	Pinned(img *images.Image) bool
	PullProgress(ref string) (images.PullProgress, bool)
}

// toCRIImage converts an image for ListImages and ImageStatus.
func (s *Server) toCRIImage(img *images.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        img.Size,
		Spec:        &runtimeapi.ImageSpec{Image: img.ID},
		Pinned:      s.Images.Pinned(img),
	}
	out.Uid, out.Username = imageUser(img.Spec.Config.User)
	return out
}

// imageUser splits an image config's User ("uid", "name", "uid:gid", "name:group")
// into the uid or the user name CRI reports.
func imageUser(user string) (*runtimeapi.Int64Value, string) {
	u, _, _ := strings.Cut(user, ":")
	if u == "" {
		return nil, ""
	}
	if uid, err := strconv.ParseInt(u, 10, 64); err == nil {
		return &runtimeapi.Int64Value{Value: uid}, ""
	}
	return nil, u
}

// imageVerboseInfo is ImageStatus's verbose "info": the image config and its identity.
func imageVerboseInfo(img *images.Image, pinned bool) map[string]string {
	b, err := json.Marshal(struct {
		ChainID   string `json:"chainID"`
		Target    any    `json:"target"`
		Pinned    bool   `json:"pinned"`
		ImageSpec any    `json:"imageSpec"`
	}{img.ChainID, img.Target, pinned, img.Spec})
	if err != nil {
		return nil
	}
	return map[string]string{"info": string(b)}
}
