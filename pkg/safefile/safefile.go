// Package safefile reads and writes files whose paths come from requests or images,
// which keelson (root) must not let lead it astray: reads take regular files only,
// of a bounded size, opened first as a path-only handle so that a device node or a
// FIFO planted at the path is never opened; image files are resolved inside the
// image's root; log directories are walked without following symbolic links.
package safefile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// MaxRead is the size cap for files read on a request's behalf.
const MaxRead = 1 << 20

// ReadFile reads the regular file at path (host path, symbolic links followed), at
// most max bytes. A missing file gives an error satisfying os.ErrNotExist.
func ReadFile(ctx context.Context, path string, max int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	h := os.NewFile(uintptr(fd), path)
	defer h.Close()
	return readHandle(ctx, h, path, max)
}

// ReadInRoot reads the regular file at path inside root (an image's mounted root
// file system): symbolic links and ".." resolve as if root were "/", so nothing
// outside it is reached. At most max bytes. A missing file satisfies os.ErrNotExist.
func ReadInRoot(ctx context.Context, root, path string, max int64) ([]byte, error) {
	h, err := pathrs.OpenInRoot(root, path)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return readHandle(ctx, h, path, max)
}

// readHandle checks what a path-only handle refers to, then opens it for reading.
func readHandle(ctx context.Context, h *os.File, name string, max int64) ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s is not a regular file (mode %#o): %w", name, st.Mode&unix.S_IFMT, errdefs.ErrInvalidArgument)
	}
	if st.Size > max {
		return nil, fmt.Errorf("%s is %d bytes; at most %d are read: %w", name, st.Size, max, errdefs.ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	// The file may grow between the stat and the read: read one byte past the cap.
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is more than %d bytes: %w", name, max, errdefs.ErrInvalidArgument)
	}
	return b, nil
}

// ErrSymlink is returned when a path that must not go through a symbolic link does.
var ErrSymlink = errors.New("is or goes through a symbolic link")

// MkdirAllNoFollow makes the absolute directory dir and its missing parents (mode
// perm) and returns it opened as a path-only handle, refusing to follow a symbolic
// link anywhere on the way: a link planted in a directory that a root process then
// writes into could send it anywhere.
func MkdirAllNoFollow(dir string, perm os.FileMode) (*os.File, error) {
	if !strings.HasPrefix(dir, "/") {
		return nil, fmt.Errorf("%s is not an absolute path", dir)
	}
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for _, e := range strings.Split(dir, "/") {
		if e == "" || e == "." {
			continue
		}
		if e == ".." {
			unix.Close(fd)
			return nil, fmt.Errorf("%s has a \"..\" element", dir)
		}
		next, err := openDir(fd, e)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(fd, e, uint32(perm.Perm())); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return nil, fmt.Errorf("making %s in %s: %w", e, dir, err)
			}
			next, err = openDir(fd, e)
		}
		unix.Close(fd)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s: %s %w or is not a directory", dir, e, ErrSymlink)
		}
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", dir, err)
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), dir), nil
}

func openDir(parent int, name string) (int, error) {
	return unix.Openat(parent, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// OpenAppend opens (creating) the file name in the directory handle dir for
// appending, refusing a symbolic link or anything but a regular file there.
func OpenAppend(dir *os.File, name string, perm os.FileMode) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir.Name() + "/" + name, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir.Name()+"/"+name)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", f.Name())
	}
	// Writes block as before: the flag only kept a FIFO from hanging the open.
	if err := unix.SetNonblock(fd, false); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
