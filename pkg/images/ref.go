package images

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

var (
	fullIDRE   = regexp.MustCompile(`^(sha256:)?[a-f0-9]{64}$`)
	idPrefixRE = regexp.MustCompile(`^(sha256:)?[a-f0-9]{3,63}$`)
)

// Normalize parses an image reference the way docker and kubelet write them and
// returns its full form: "busybox" → "docker.io/library/busybox:latest". A reference
// with both a tag and a digest keeps only the digest.
func Normalize(ref string) (reference.Named, error) {
	if strings.TrimSpace(ref) == "" {
		return nil, fmt.Errorf("image reference is empty: %w", errdefs.ErrInvalidArgument)
	}
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	return named, nil
}

// repoDigest is "<repository>@<digest>" for a repository and a manifest digest.
func repoDigest(named reference.Named, digest string) string {
	return named.Name() + "@" + digest
}
