package images

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is what CRI knows of an image: its ID (the config digest, which kubelet uses
// as the image's identity), the names pointing at it, and its config.
type Image struct {
	ID          string // "sha256:<config digest>"
	RepoTags    []string
	RepoDigests []string
	Size        uint64 // bytes of the manifest, config and layers for this platform
	Spec        ocispec.Image
	ChainID     string // identity of the unpacked root filesystem in the snapshotter
	Target      ocispec.Descriptor
}

// imageContent is what an image ID stands for, independent of its names.
type imageContent struct {
	ID      string
	Spec    ocispec.Image
	ChainID string
	Size    uint64
	Target  ocispec.Descriptor
}

// index is the in-memory view of the images in keelson's containerd namespace:
// containerd image records (one per name: tag, repo digest, or the ID itself) grouped
// by image ID. Reads never touch containerd.
type index struct {
	mu       sync.RWMutex
	names    map[string]string        // containerd image name → image ID
	contents map[string]*imageContent // image ID → content
	views    map[string]*Image        // image ID → Image, rebuilt when its names change
}

func newIndex() *index {
	return &index{names: map[string]string{}, contents: map[string]*imageContent{}, views: map[string]*Image{}}
}

// set records that name points at c.
func (x *index) set(name string, c *imageContent) {
	x.mu.Lock()
	defer x.mu.Unlock()
	old, had := x.names[name]
	x.names[name] = c.ID
	x.contents[c.ID] = c
	x.rebuild(c.ID)
	if had && old != c.ID {
		x.rebuild(old)
	}
}

// remove forgets name.
func (x *index) remove(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	id, ok := x.names[name]
	if !ok {
		return
	}
	delete(x.names, name)
	x.rebuild(id)
}

// replaceAll swaps in a complete new state (start-up, resync after missed events).
func (x *index) replaceAll(names map[string]*imageContent) {
	fresh := newIndex()
	for n, c := range names {
		fresh.names[n] = c.ID
		fresh.contents[c.ID] = c
	}
	for id := range fresh.contents {
		fresh.rebuild(id)
	}
	x.mu.Lock()
	x.names, x.contents, x.views = fresh.names, fresh.contents, fresh.views
	x.mu.Unlock()
}

// rebuild recomputes id's view from its names; with no names left the image is gone.
// Callers hold mu.
func (x *index) rebuild(id string) {
	img := &Image{ID: id}
	n := 0
	for name, nid := range x.names {
		if nid != id {
			continue
		}
		n++
		switch {
		case name == id:
		case strings.Contains(name, "@"):
			img.RepoDigests = append(img.RepoDigests, name)
		default:
			img.RepoTags = append(img.RepoTags, name)
		}
	}
	if n == 0 {
		delete(x.views, id)
		delete(x.contents, id)
		return
	}
	c := x.contents[id]
	img.Size, img.Spec, img.ChainID, img.Target = c.Size, c.Spec, c.ChainID, c.Target
	slices.Sort(img.RepoTags)
	slices.Sort(img.RepoDigests)
	x.views[id] = img
}

// byName returns the image a containerd name points at.
func (x *index) byName(name string) *Image {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if id, ok := x.names[name]; ok {
		return x.views[id]
	}
	return nil
}

// byID returns the image with this full ID.
func (x *index) byID(id string) *Image {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.views[id]
}

// byIDPrefix returns the image whose ID's hex starts with prefix; ambiguity is an error.
func (x *index) byIDPrefix(prefix string) (*Image, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var found *Image
	for id, img := range x.views {
		if strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), prefix) {
			if found != nil {
				return nil, fmt.Errorf("image ID prefix %q is ambiguous (%s, %s): %w", prefix, found.ID, id, errdefs.ErrInvalidArgument)
			}
			found = img
		}
	}
	return found, nil
}

// namesOf lists every containerd name pointing at id.
func (x *index) namesOf(id string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	for name, nid := range x.names {
		if nid == id {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// list returns every image, sorted by ID.
func (x *index) list() []*Image {
	x.mu.RLock()
	out := make([]*Image, 0, len(x.views))
	for _, img := range x.views {
		out = append(out, img)
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b *Image) int { return strings.Compare(a.ID, b.ID) })
	return out
}
