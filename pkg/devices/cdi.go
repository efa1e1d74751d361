// Package devices resolves the devices device plugins and DRA drivers hand to
// containers as CDI names (Container Device Interface, tags.cncf.io/
// container-device-interface): vendor.com/class=name in ContainerConfig.CDI_devices or
// in cdi.k8s.io/* annotations, looked up in the CDI spec files of the configured
// directories (watched for changes), and applied to the container's OCI spec: device
// nodes, mounts, environment, hooks.
package devices

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"
)

// CDI is the registry of CDI devices in a set of spec directories.
type CDI struct {
	cache *cdi.Cache
	dirs  []string
}

// NewCDI reads the CDI specs of dirs and follows their changes. Directories that do
// not exist yet are watched for too; unreadable specs are reported by Errors.
func NewCDI(dirs []string) (*CDI, error) {
	c, err := cdi.NewCache(cdi.WithSpecDirs(dirs...), cdi.WithAutoRefresh(true))
	if err != nil {
		return nil, err
	}
	return &CDI{cache: c, dirs: dirs}, nil
}

// Requested returns the CDI device names a container asks for, from CDI_devices and
// from cdi.k8s.io/* annotations, each checked to be a qualified name. It has no side
// effects: CreateContainer calls it first.
func Requested(cfg *runtimeapi.ContainerConfig) ([]string, error) {
	var names []string
	for i, d := range cfg.GetCDIDevices() {
		if _, _, _, err := parser.ParseQualifiedName(d.GetName()); err != nil {
			return nil, fmt.Errorf("config.CDI_devices[%d].name %q: %v (want vendor.com/class=name): %w", i, d.GetName(), err, errdefs.ErrInvalidArgument)
		}
		names = append(names, d.GetName())
	}
	_, fromAnnotations, err := cdi.ParseAnnotations(cfg.GetAnnotations())
	if err != nil {
		return nil, fmt.Errorf("config.annotations: CDI device annotation: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	for _, d := range fromAnnotations {
		if !slices.Contains(names, d) {
			names = append(names, d)
		}
	}
	return names, nil
}

// Inject applies the devices' edits to spec. A device no spec file declares is an
// InvalidArgument naming it.
func (c *CDI) Inject(spec *specs.Spec, names []string) error {
	if len(names) == 0 {
		return nil
	}
	unresolved, err := c.cache.InjectDevices(spec, names...)
	if len(unresolved) > 0 {
		return fmt.Errorf("CDI devices %s are not declared by any CDI spec in %s: %w", strings.Join(unresolved, ", "), strings.Join(c.dirs, ", "), errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return fmt.Errorf("applying CDI devices %s: %w", strings.Join(names, ", "), err)
	}
	return nil
}

// Errors lists the spec files that could not be used, for the log and doctor.
func (c *CDI) Errors() error {
	var errs []error
	for path, list := range c.cache.GetErrors() {
		for _, e := range list {
			errs = append(errs, fmt.Errorf("%s: %w", path, e))
		}
	}
	return errors.Join(errs...)
}
