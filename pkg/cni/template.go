package cni

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/keelson/keelson/pkg/store"
)

// TemplateOutput is the file a rendered conf template becomes in the conf dir: it
// sorts before the usual names, so it is the network used.
const TemplateOutput = "05-keelson-podcidr.conflist"

// templateData is what a conf template sees (the names containerd's CRI gives its
// template, so a template written for it renders here too).
type templateData struct {
	PodCIDR       string   // the first of the node's pod CIDRs
	PodCIDRRanges []string // all of them (dual stack: one per family)
	Routes        []string // a default route per family of the ranges
}

// renderTemplate writes the conf template (Options.ConfTemplate) for the given pod
// CIDRs into the conf dir, atomically; the conf dir watch loads it.
func (m *Manager) renderTemplate(cidrs string) error {
	if m.opts.ConfTemplate == "" || cidrs == "" {
		return nil
	}
	src, err := os.ReadFile(m.opts.ConfTemplate)
	if err != nil {
		return fmt.Errorf("cni.conf_template: %w", err)
	}
	tmpl, err := template.New(filepath.Base(m.opts.ConfTemplate)).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return fmt.Errorf("cni.conf_template %s: %w", m.opts.ConfTemplate, err)
	}
	data := templateData{}
	for _, c := range strings.Split(cidrs, ",") {
		c = strings.TrimSpace(c)
		data.PodCIDRRanges = append(data.PodCIDRRanges, c)
		if strings.Contains(c, ":") {
			data.Routes = append(data.Routes, "::/0")
		} else {
			data.Routes = append(data.Routes, "0.0.0.0/0")
		}
	}
	data.PodCIDR = data.PodCIDRRanges[0]
	var out bytes.Buffer
	if err := tmpl.Execute(&out, data); err != nil {
		return fmt.Errorf("cni.conf_template %s: %w", m.opts.ConfTemplate, err)
	}
	if err := os.MkdirAll(m.opts.ConfDir, 0o755); err != nil {
		return err
	}
	return store.WriteFileAtomic(filepath.Join(m.opts.ConfDir, TemplateOutput), out.Bytes(), 0o644)
}
