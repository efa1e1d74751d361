// Package cni attaches pod network namespaces to the node's network through CNI
// plugins (libcni). It knows neither CRI nor containerd.
package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/fsnotify/fsnotify"
	"k8s.io/klog/v2"
)

// ReasonNotReady is the NetworkReady condition's reason while no usable config exists.
const ReasonNotReady = "NetworkPluginNotReady"

var confExtensions = []string{".conf", ".conflist", ".json"}

// Options locate the CNI config, plugins and keelson's records of attachments.
type Options struct {
	ConfDir     string
	BinDirs     []string
	CacheDir    string // libcni's result cache
	PodCIDRFile string // where the pod CIDR kubelet reports is kept; "" = memory only
	PendingDir  string // pending attachment records; "" = none kept
	// ConfTemplate, when set, is rendered with the pod CIDRs kubelet reports into
	// <ConfDir>/TemplateOutput (text/template: .PodCIDR, .PodCIDRRanges, .Routes).
	ConfTemplate string
}

// Manager holds the network config in use (the first valid file in lexical order of
// the conf dir), reloaded whenever the directory changes.
type Manager struct {
	opts Options
	cni  *libcni.CNIConfig

	mu      sync.RWMutex
	network *libcni.NetworkConfigList
	file    string
	loadErr error
	podCIDR string
}

// New returns a Manager; call Load (and Watch) before use.
func New(opts Options) *Manager {
	return &Manager{
		opts:    opts,
		podCIDR: readPodCIDR(opts.PodCIDRFile),
		cni:     libcni.NewCNIConfigWithCacheDir(opts.BinDirs, opts.CacheDir, nil),
		loadErr: errors.New("CNI config not loaded yet"),
	}
}

// Load (re)reads the conf dir and keeps the first config that parses and whose plugins
// are all installed. It returns the error that leaves the network not ready, if any.
func (m *Manager) Load() error {
	network, file, err := m.pick()
	m.mu.Lock()
	changed := file != m.file || (err == nil) != (m.loadErr == nil)
	m.network, m.file, m.loadErr = network, file, err
	m.mu.Unlock()
	if changed {
		if err != nil {
			klog.InfoS("CNI network not ready", "confDir", m.opts.ConfDir, "err", err)
		} else {
			klog.InfoS("Loaded CNI network", "name", network.Name, "file", file, "cniVersion", network.CNIVersion)
		}
	}
	return err
}

func (m *Manager) pick() (*libcni.NetworkConfigList, string, error) {
	files, err := libcni.ConfFiles(m.opts.ConfDir, confExtensions)
	if err != nil {
		return nil, "", fmt.Errorf("reading CNI config dir %s: %w", m.opts.ConfDir, err)
	}
	if len(files) == 0 {
		return nil, "", fmt.Errorf("no CNI network config in %s (hack/install-deps.sh writes a default one)", m.opts.ConfDir)
	}
	var errs []error
	for _, f := range files { // ConfFiles sorts lexically
		network, err := m.loadFile(f)
		if err != nil {
			errs = append(errs, err)
			klog.V(2).InfoS("Skipping CNI config", "file", f, "err", err)
			continue
		}
		return network, f, nil
	}
	return nil, "", fmt.Errorf("no valid CNI network config in %s: %w", m.opts.ConfDir, errors.Join(errs...))
}

func (m *Manager) loadFile(file string) (*libcni.NetworkConfigList, error) {
	var network *libcni.NetworkConfigList
	if filepath.Ext(file) == ".conflist" {
		n, err := libcni.NetworkConfFromFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		network = n
	} else {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		plugin, err := libcni.NetworkPluginConfFromBytes(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if plugin.Network.Type == "" {
			return nil, fmt.Errorf("%s: no plugin type (is it a conflist without the .conflist extension?)", file)
		}
		if network, err = libcni.ConfListFromConf(plugin); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	if len(network.Plugins) == 0 {
		return nil, fmt.Errorf("%s: no plugins", file)
	}
	for _, p := range network.Plugins {
		if _, err := invoke.FindInPath(p.Network.Type, m.opts.BinDirs); err != nil {
			return nil, fmt.Errorf("%s: plugin %q not found in %v", file, p.Network.Type, m.opts.BinDirs)
		}
	}
	return network, nil
}

// Status is nil when a usable network config is loaded, else why not.
func (m *Manager) Status() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.loadErr
}

// Network returns the config in use and its file, or nil.
func (m *Manager) Network() (*libcni.NetworkConfigList, string) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.network, m.file
}

// Watch reloads the config whenever the conf dir changes, until ctx ends. The dir is
// created if missing so that a config dropped in later is seen.
func (m *Manager) Watch(ctx context.Context) error {
	if err := os.MkdirAll(m.opts.ConfDir, 0o755); err != nil {
		return err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := w.Add(m.opts.ConfDir); err != nil {
		w.Close()
		return fmt.Errorf("watching %s: %w", m.opts.ConfDir, err)
	}
	go func() {
		defer w.Close()
		// A config written in several steps raises several events; reload once they settle.
		var reload <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				klog.V(4).InfoS("CNI config dir changed", "event", ev.String())
				reload = time.After(100 * time.Millisecond)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				klog.ErrorS(err, "Watching CNI config dir", "dir", m.opts.ConfDir)
			case <-reload:
				reload = nil
				_ = m.Load()
			}
		}
	}()
	return nil
}
