package oci

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/user"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// processUser is who a container's process runs as.
type processUser struct {
	UID, GID       uint32
	AdditionalGids []uint32 // the primary gid first, then the rest sorted
}

// imageUserDB is the image's /etc/passwd and /etc/group, either possibly absent
// (distroless and scratch images have neither).
type imageUserDB struct {
	users  []user.User
	groups []user.Group
}

func loadImageUserDB(read func(string) ([]byte, error)) (*imageUserDB, error) {
	db := &imageUserDB{}
	if read == nil {
		return db, nil
	}
	if b, err := readOptional(read, "/etc/passwd"); err != nil {
		return nil, err
	} else if b != nil {
		if db.users, err = user.ParsePasswd(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("the image's /etc/passwd cannot be parsed: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	if b, err := readOptional(read, "/etc/group"); err != nil {
		return nil, err
	} else if b != nil {
		if db.groups, err = user.ParseGroup(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("the image's /etc/group cannot be parsed: %v: %w", err, errdefs.ErrInvalidArgument)
		}
	}
	return db, nil
}

func readOptional(read func(string) ([]byte, error), path string) ([]byte, error) {
	b, err := read(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the image's %s: %w", path, err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// resolveUser decides the process user the way kubelet expects it: run_as_username or
// run_as_user (with run_as_group) win over the image's USER, names are looked up in
// the image's own /etc/passwd and /etc/group (never the host's), a numeric uid missing
// from /etc/passwd is fine (gid 0, like Docker), an unknown name is an error.
func resolveUser(sc *runtimeapi.LinuxContainerSecurityContext, imageUser string, read func(string) ([]byte, error)) (processUser, error) {
	var userPart, groupPart, from string
	switch {
	case sc.GetRunAsUsername() != "":
		from = "run_as_username"
		userPart, groupPart, _ = strings.Cut(sc.GetRunAsUsername(), ":")
	case sc.GetRunAsUser() != nil:
		from = "run_as_user"
		v := sc.GetRunAsUser().GetValue()
		if v < 0 || v > math.MaxInt32 {
			return processUser{}, fmt.Errorf("run_as_user %d is out of range [0, %d]: %w", v, math.MaxInt32, errdefs.ErrInvalidArgument)
		}
		userPart = strconv.FormatInt(v, 10)
	default:
		from = "the image's USER"
		userPart, groupPart, _ = strings.Cut(imageUser, ":")
	}
	groupFrom := from
	if g := sc.GetRunAsGroup(); g != nil {
		if g.GetValue() < 0 || g.GetValue() > math.MaxInt32 {
			return processUser{}, fmt.Errorf("run_as_group %d is out of range [0, %d]: %w", g.GetValue(), math.MaxInt32, errdefs.ErrInvalidArgument)
		}
		groupPart, groupFrom = strconv.FormatInt(g.GetValue(), 10), "run_as_group"
	}

	db, err := loadImageUserDB(read)
	if err != nil {
		return processUser{}, err
	}

	var u processUser
	var name string // the passwd name, for group membership
	if userPart == "" {
		userPart = "0"
	}
	if uid, numeric, err := parseID(userPart); err != nil {
		return processUser{}, fmt.Errorf("user %q from %s: %v: %w", userPart, from, err, errdefs.ErrInvalidArgument)
	} else if numeric {
		u.UID = uid
		if i := slices.IndexFunc(db.users, func(e user.User) bool { return e.Uid == int(uid) }); i >= 0 {
			name, u.GID = db.users[i].Name, uint32(db.users[i].Gid)
		}
	} else {
		i := slices.IndexFunc(db.users, func(e user.User) bool { return e.Name == userPart })
		if i < 0 {
			return processUser{}, fmt.Errorf("user %q from %s is not in the image's /etc/passwd (use a numeric uid, or add the user to the image): %w", userPart, from, errdefs.ErrInvalidArgument)
		}
		e := db.users[i]
		if e.Uid < 0 || e.Uid > math.MaxInt32 || e.Gid < 0 || e.Gid > math.MaxInt32 {
			return processUser{}, fmt.Errorf("user %q in the image's /etc/passwd has an out-of-range uid or gid: %w", userPart, errdefs.ErrInvalidArgument)
		}
		name, u.UID, u.GID = e.Name, uint32(e.Uid), uint32(e.Gid)
	}

	if groupPart != "" {
		if gid, numeric, err := parseID(groupPart); err != nil {
			return processUser{}, fmt.Errorf("group %q from %s: %v: %w", groupPart, groupFrom, err, errdefs.ErrInvalidArgument)
		} else if numeric {
			u.GID = gid
		} else {
			i := slices.IndexFunc(db.groups, func(g user.Group) bool { return g.Name == groupPart })
			if i < 0 {
				return processUser{}, fmt.Errorf("group %q from %s is not in the image's /etc/group: %w", groupPart, groupFrom, errdefs.ErrInvalidArgument)
			}
			u.GID = uint32(db.groups[i].Gid)
		}
	}

	var extra []uint32
	switch sc.GetSupplementalGroupsPolicy() {
	case runtimeapi.SupplementalGroupsPolicy_Merge:
		// The groups /etc/group lists the user in, as a login shell would get them.
		if name != "" {
			for _, g := range db.groups {
				if slices.Contains(g.List, name) && g.Gid >= 0 && g.Gid <= math.MaxInt32 {
					extra = append(extra, uint32(g.Gid))
				}
			}
		}
	case runtimeapi.SupplementalGroupsPolicy_Strict:
	default:
		return processUser{}, fmt.Errorf("supplemental_groups_policy %v is not supported: %w", sc.GetSupplementalGroupsPolicy(), errdefs.ErrNotImplemented)
	}
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > math.MaxInt32 {
			return processUser{}, fmt.Errorf("supplemental group %d is out of range [0, %d]: %w", g, math.MaxInt32, errdefs.ErrInvalidArgument)
		}
		extra = append(extra, uint32(g))
	}
	slices.Sort(extra)
	extra = slices.Compact(extra)
	// runc calls setgroups with exactly this list: keep the primary gid in it, as
	// containerd and Docker do, so files owned by it stay reachable after setgid.
	u.AdditionalGids = append([]uint32{u.GID}, slices.DeleteFunc(extra, func(g uint32) bool { return g == u.GID })...)
	return u, nil
}

// parseID reads a uid or gid; numeric=false means s is a name. runc refuses ids
// above MaxInt32, so they are refused here with a clearer message.
func parseID(s string) (id uint32, numeric bool, err error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, true, fmt.Errorf("id is out of range [0, %d]", math.MaxInt32)
		}
		return 0, false, nil
	}
	if v > math.MaxInt32 {
		return 0, true, fmt.Errorf("id %d is out of range [0, %d]", v, math.MaxInt32)
	}
	return uint32(v), true, nil
}
