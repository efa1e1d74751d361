package container

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	crmetadata "github.com/checkpoint-restore/checkpointctl/lib"
	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"k8s.io/klog/v2"

	keelsonimages "github.com/keelson/keelson/pkg/images"
	"github.com/keelson/keelson/pkg/store"
)

// Checkpoints (KEP-2008) are archives in the layout checkpointctl and CRI-O read:
// config.dump (crmetadata.ContainerConfig), spec.dump (the OCI spec), status.dump
// (the CRI ContainerStatus), checkpoint/ (CRIU's images) and rootfs-diff.tar (the
// container's changes to its image, an uncompressed layer tar with whiteouts).

// Checkpoint writes a checkpoint archive of running container id to location (a
// file; replaced atomically). The container keeps running: its task is paused while
// CRIU dumps it and while its writable layer is diffed. status is the container's
// CRI status, stored as status.dump.
func (s *Service) Checkpoint(ctx context.Context, id, location string, status []byte) error {
	if err := s.opts.CRIU.Check(); err != nil {
		return err
	}
	c, err := s.Get(id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.Status().State; st != StateRunning {
		return fmt.Errorf("container %s is %s; only a running container can be checkpointed: %w", id, st, errdefs.ErrFailedPrecondition)
	}
	task, err := s.runningTask(ctx, c)
	if err != nil {
		return err
	}
	if task == nil {
		return fmt.Errorf("container %s has exited: %w", id, errdefs.ErrFailedPrecondition)
	}
	work, cleanup, err := s.checkpointWork(location)
	if err != nil {
		return err
	}
	defer cleanup()
	nsCtx := namespaces.WithNamespace(ctx, s.conn.Namespace)
	ctx, done, err := s.client.WithLease(nsCtx)
	if err != nil {
		return err
	}
	defer done(context.WithoutCancel(ctx))
	img, err := task.Checkpoint(ctx, containerd.WithCheckpointName(keelsonimages.CheckpointRecordPrefix+id), func(r *containerd.CheckpointTaskInfo) error {
		r.Options = &options.CheckpointOptions{WorkPath: work}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkpointing container %s (CRIU's log is dump.log in its work directory, kept in the shim's log): %w", id, err)
	}
	defer func() {
		if err := s.client.ImageService().Delete(context.WithoutCancel(ctx), img.Name()); err != nil && !errdefs.IsNotFound(err) {
			klog.ErrorS(err, "Removing a checkpoint's image record", "containerID", id)
		}
	}()
	dir := filepath.Join(work, "archive")
	if err := s.writeCheckpointDir(ctx, c, img, dir, status); err != nil {
		return err
	}
	if err := writeTar(dir, filepath.Join(work, "archive.tar"), location); err != nil {
		return fmt.Errorf("writing the checkpoint archive %s: %w", location, err)
	}
	klog.V(2).InfoS("Container checkpointed", "containerID", id, "location", location)
	return nil
}

// writeCheckpointDir lays out the archive's files in dir from the checkpoint image
// containerd made (CRIU images, writable layer diff, spec).
func (s *Service) writeCheckpointDir(ctx context.Context, c *Container, img containerd.Image, dir string, status []byte) error {
	cs := s.client.ContentStore()
	var index ocispec.Index
	raw, err := content.ReadBlob(ctx, cs, img.Target())
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		return fmt.Errorf("checkpoint index: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, crmetadata.CheckpointDirectory), 0o700); err != nil {
		return err
	}
	for _, d := range index.Manifests {
		var err error
		switch d.MediaType {
		case images.MediaTypeContainerd1Checkpoint:
			err = withBlob(ctx, cs, d, func(r io.Reader) error { return untar(r, filepath.Join(dir, crmetadata.CheckpointDirectory)) })
		case ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayer:
			err = withBlob(ctx, cs, d, func(r io.Reader) error {
				if d.MediaType == ocispec.MediaTypeImageLayerGzip {
					zr, err := gzip.NewReader(r)
					if err != nil {
						return err
					}
					defer zr.Close()
					r = zr
				}
				return writeFile(filepath.Join(dir, crmetadata.RootFsDiffTar), r)
			})
		}
		if err != nil {
			return fmt.Errorf("checkpoint part %s: %w", d.MediaType, err)
		}
	}
	cfg, err := json.Marshal(crmetadata.ContainerConfig{
		ID: c.ID, Name: c.Config.GetMetadata().GetName(),
		RootfsImage: c.ImageID, RootfsImageRef: c.ImageRef, RootfsImageName: c.ImageName,
		OCIRuntime: "runc", CreatedTime: time.Unix(0, c.CreatedAt), CheckpointedAt: time.Now(),
	})
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{crmetadata.ConfigDumpFile: cfg, crmetadata.SpecDumpFile: c.Spec(), crmetadata.StatusDumpFile: status} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func withBlob(ctx context.Context, cs content.Store, d ocispec.Descriptor, f func(io.Reader) error) error {
	ra, err := cs.ReaderAt(ctx, d)
	if err != nil {
		return err
	}
	defer ra.Close()
	return f(content.NewReader(ra))
}

func writeFile(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// eachEntry calls f for each entry of the tar stream r.
func eachEntry(r io.Reader, f func(h *tar.Header, r io.Reader) error) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := f(h, tr); err != nil {
			return err
		}
	}
}

// untar extracts regular files and directories of r under dir; anything else (links,
// devices) or a name leaving dir is refused.
func untar(r io.Reader, dir string) error {
	return eachEntry(r, func(h *tar.Header, r io.Reader) error {
		name := filepath.Clean(h.Name)
		if name == "." {
			return nil
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("archive entry %q leaves the archive: %w", h.Name, errdefs.ErrInvalidArgument)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			return os.MkdirAll(p, 0o700)
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			return writeFile(p, r)
		default:
			return fmt.Errorf("archive entry %q is not a regular file or a directory: %w", h.Name, errdefs.ErrInvalidArgument)
		}
	})
}

// checkpointWorkPrefix names the work directories made beside checkpoint locations.
const checkpointWorkPrefix = ".keelson-checkpoint-"

// checkpointWork makes a checkpoint's work directory beside location (the archive is
// renamed from it into place, so it must be on the same file system), recorded first
// under <root_dir>/checkpoint-work so that a restart removes it if keelson dies
// before cleanup, which removes both.
func (s *Service) checkpointWork(location string) (string, func(), error) {
	name := checkpointWorkPrefix + store.NewID()[:16]
	work := filepath.Join(filepath.Dir(location), name)
	record := ""
	if s.opts.RootDir != "" {
		record = filepath.Join(s.opts.RootDir, "checkpoint-work", name)
		if err := os.MkdirAll(filepath.Dir(record), 0o700); err != nil {
			return "", nil, err
		}
		if err := store.WriteFileAtomic(record, []byte(work), 0o600); err != nil {
			return "", nil, err
		}
	}
	cleanup := func() {
		_ = os.RemoveAll(work)
		if record != "" {
			_ = os.Remove(record)
		}
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("location: %w", err)
	}
	return work, cleanup, nil
}

// sweepCheckpointWork removes the work directories of checkpoints a dead keelson left.
func (s *Service) sweepCheckpointWork() {
	if s.opts.RootDir == "" {
		return
	}
	dir := filepath.Join(s.opts.RootDir, "checkpoint-work")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		record := filepath.Join(dir, e.Name())
		work, err := os.ReadFile(record)
		if err == nil && strings.HasPrefix(filepath.Base(string(work)), checkpointWorkPrefix) {
			if err := os.RemoveAll(string(work)); err != nil {
				klog.ErrorS(err, "Removing a left-over checkpoint work directory", "path", string(work))
				continue
			}
			klog.InfoS("Removed a left-over checkpoint work directory", "path", string(work))
		}
		_ = os.Remove(record)
	}
}

// writeTar archives the regular files and directories under dir into tmp, then
// renames it to path.
func writeTar(dir, tmp, path string) (retErr error) {
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() && !info.IsDir() {
			return nil
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name, _ = filepath.Rel(dir, p)
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil || info.IsDir() {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
