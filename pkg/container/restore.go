package container

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	crmetadata "github.com/checkpoint-restore/checkpointctl/lib"
	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// Restore (as CRI-O does it): a CreateContainer whose image is the absolute path of a
// checkpoint archive makes a container of the checkpointed one's image and command,
// with the new request's metadata, mounts and security; StartContainer then restores
// its processes with CRIU instead of starting them, after containerd applied the
// archive's rootfs-diff.tar to the new root filesystem. The archive is extracted
// under <root_dir>/containers/<id>/checkpoint until the container is removed.

// restoreDir holds a restored container's extracted checkpoint.
func (s *Service) restoreDir(id string) string {
	return filepath.Join(s.opts.RootDir, "containers", id, "checkpoint")
}

// checkpointArchive is the path of a checkpoint archive named as a container's
// image, or "" when the image is an image reference (which never starts with "/").
func checkpointArchive(cfg *runtimeapi.ContainerConfig) string {
	ref := cfg.GetImage().GetImage()
	if !filepath.IsAbs(ref) {
		return ""
	}
	return ref
}

// checkpointed is what a restore takes from the archive before anything is made.
type checkpointed struct {
	config crmetadata.ContainerConfig
	spec   specs.Spec
}

// readCheckpoint reads config.dump and spec.dump of the archive at path (Create has
// checked CRIU before).
func (s *Service) readCheckpoint(path string) (*checkpointed, error) {
	if !s.opts.Restore {
		return nil, fmt.Errorf("restoring a checkpoint needs containerd 2.0 or later: %w", errdefs.ErrFailedPrecondition)
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("config.image.image %q is neither an image reference nor a checkpoint archive (%v): %w", path, err, errdefs.ErrInvalidArgument)
	}
	var ck checkpointed
	found := 0
	err = scanTar(path, func(name string, r io.Reader) error {
		var v any
		switch name {
		case crmetadata.ConfigDumpFile:
			v = &ck.config
		case crmetadata.SpecDumpFile:
			v = &ck.spec
		default:
			return nil
		}
		found++
		return json.NewDecoder(io.LimitReader(r, 4<<20)).Decode(v)
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint archive %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	if found != 2 || ck.spec.Process == nil || ck.config.RootfsImage == "" && ck.config.RootfsImageName == "" {
		return nil, fmt.Errorf("checkpoint archive %s lacks %s or %s (or its image or process): %w", path, crmetadata.ConfigDumpFile, crmetadata.SpecDumpFile, errdefs.ErrInvalidArgument)
	}
	return &ck, nil
}

// restoreConfig is the request as the checkpointed container would have it: the
// checkpointed image (ID first, else name) and, unless the request names one, its
// command and working directory.
func (ck *checkpointed) restoreConfig(cfg *runtimeapi.ContainerConfig, imageID string) *runtimeapi.ContainerConfig {
	out := proto.Clone(cfg).(*runtimeapi.ContainerConfig)
	out.Image = &runtimeapi.ImageSpec{Image: imageID, UserSpecifiedImage: ck.config.RootfsImageName}
	if len(out.Command) == 0 && len(out.Args) == 0 {
		out.Command = ck.spec.Process.Args
	}
	if out.WorkingDir == "" {
		out.WorkingDir = ck.spec.Process.Cwd
	}
	return out
}

// restoreInput turns a request naming a checkpoint archive into the request the
// container is made from (restoreConfig), with the checkpointed image, which must be
// present: by ID, digest or name.
func (s *Service) restoreInput(cfg *runtimeapi.ContainerConfig, archive string) (*runtimeapi.ContainerConfig, error) {
	ck, err := s.readCheckpoint(archive)
	if err != nil {
		return nil, err
	}
	for _, ref := range []string{ck.config.RootfsImage, ck.config.RootfsImageRef, ck.config.RootfsImageName} {
		if ref == "" {
			continue
		}
		if img, err := s.images.Get(ref); err == nil {
			return ck.restoreConfig(cfg, img.ID), nil
		}
	}
	return nil, fmt.Errorf("the image of checkpoint %s (%s) is not present: pull it first: %w", archive, ck.config.RootfsImageName, errdefs.ErrNotFound)
}

// extractCheckpoint unpacks the archive's CRIU images and rootfs diff for container id.
func (s *Service) extractCheckpoint(id, path string) error {
	dir := s.restoreDir(id)
	if err := os.MkdirAll(filepath.Join(dir, "work"), 0o700); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := untar(f, dir); err != nil {
		return fmt.Errorf("extracting checkpoint archive %s: %w", path, err)
	}
	if _, err := os.Stat(filepath.Join(dir, crmetadata.CheckpointDirectory, "inventory.img")); err != nil {
		return fmt.Errorf("checkpoint archive %s holds no CRIU images (%s/inventory.img): %w", path, crmetadata.CheckpointDirectory, errdefs.ErrInvalidArgument)
	}
	return nil
}

// removeRestoreDir removes what extractCheckpoint made for container id.
func (s *Service) removeRestoreDir(id string) error {
	if s.opts.RootDir == "" {
		return nil
	}
	return os.RemoveAll(filepath.Dir(s.restoreDir(id)))
}

// sweepRestoreDirs removes the extracted checkpoints of containers that do not exist
// (a crash inside CreateContainer).
func (s *Service) sweepRestoreDirs() {
	if s.opts.RootDir == "" {
		return
	}
	entries, _ := os.ReadDir(filepath.Join(s.opts.RootDir, "containers"))
	for _, e := range entries {
		if _, ok := s.store.Get(e.Name()); !ok {
			if err := s.removeRestoreDir(e.Name()); err != nil {
				klog.ErrorS(err, "Removing a left-over checkpoint", "containerID", e.Name())
			}
		}
	}
}

// restoreOptions has CRIU keep its restore work files (restore.log) beside the
// extracted checkpoint rather than in the task's bundle, which a failed restore
// removes with its log.
func (s *Service) restoreOptions(opts any, restoreFrom string) any {
	if o, ok := opts.(*options.Options); ok && restoreFrom != "" {
		o = proto.Clone(o).(*options.Options)
		o.CriuWorkPath = filepath.Join(restoreFrom, "work")
		return o
	}
	return opts
}

// restoreLog is the end of CRIU's log of a failed restore.
func restoreLog(restoreFrom string) string {
	b, err := os.ReadFile(filepath.Join(restoreFrom, "work", "restore.log"))
	if err != nil {
		return "(no restore.log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var errs []string
	for _, l := range lines {
		if strings.Contains(l, "Error") {
			errs = append(errs, strings.TrimSpace(l))
		}
	}
	if len(errs) == 0 {
		errs = lines[max(0, len(lines)-3):]
	}
	return strings.Join(errs[max(0, len(errs)-3):], " | ")
}

// restoreTask creates the container's task from its checkpoint and restores its
// processes: the task is running on return.
func (s *Service) restoreTask(ctx context.Context, cc containerd.Container, c *Container) (containerd.Task, *containerIO, error) {
	creator, cio0, err := s.ioCreator(c)
	if err != nil {
		return nil, nil, fmt.Errorf("setting up stdio of container %s: %w", c.ID, err)
	}
	if _, err := cc.Restore(ctx, creator, filepath.Join(c.RestoreFrom, crmetadata.CheckpointDirectory)); err != nil {
		cio0.close()
		return nil, nil, fmt.Errorf("restoring container %s from its checkpoint (CRIU: %s; its log: %s): %w", c.ID, restoreLog(c.RestoreFrom), filepath.Join(c.RestoreFrom, "work", "restore.log"), err)
	}
	task, err := cc.Task(ctx, nil)
	if err != nil {
		cio0.close()
		return nil, nil, fmt.Errorf("loading restored task of container %s: %w", c.ID, err)
	}
	return task, cio0, nil
}

// scanTar calls f for each regular file of the tar at path.
func scanTar(path string, f func(name string, r io.Reader) error) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	return eachEntry(file, func(h *tar.Header, r io.Reader) error {
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		return f(filepath.Clean(h.Name), r)
	})
}
