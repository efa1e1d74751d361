package runtime

import (
	"context"
	"errors"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"
)

// ReadRecord decodes the extension key of a containerd container record (keelson's
// durable metadata of a sandbox or container, a typeurl-registered *T) and returns it
// with the record's OCI spec (JSON).
func ReadRecord[T any](ctx context.Context, c containerd.Container, key string) (*T, []byte, error) {
	info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return nil, nil, fmt.Errorf("reading container record: %w", err)
	}
	ext, ok := info.Extensions[key]
	if !ok {
		return nil, nil, errors.New("no metadata extension")
	}
	v, err := typeurl.UnmarshalAny(ext)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding metadata: %w", err)
	}
	md, ok := v.(*T)
	if !ok {
		return nil, nil, fmt.Errorf("metadata has type %T", v)
	}
	var spec []byte
	if info.Spec != nil {
		spec = info.Spec.GetValue()
	}
	return md, spec, nil
}
