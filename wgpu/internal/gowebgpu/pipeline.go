package gowebgpu

import (
	"fmt"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

// pipeline is a compiled compute pipeline and its @group(0) layout.
type pipeline struct {
	d        *Device
	label    string
	module   *webgpu.ShaderModule
	pipeline *webgpu.ComputePipeline // nil once released
	layout   *webgpu.BindGroupLayout
}

// Release frees the pipeline. Idempotent, and safe after the device was
// closed.
func (p *pipeline) Release() {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	if p.pipeline == nil {
		return
	}
	if !p.d.closed {
		p.layout.Release()
		p.pipeline.Release()
		p.module.Release()
	}
	p.pipeline = nil
}

// Pipeline compiles WGSL source and creates the compute pipeline for
// entry. A compile or validation error is returned with the label.
func (d *Device) Pipeline(label, source, entry string) (backend.Pipeline, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return nil, err
	}
	module, err := d.dev.CreateShaderModule(&webgpu.ShaderModuleDescriptor{
		Label:          label,
		WGSLDescriptor: &webgpu.ShaderModuleWGSLDescriptor{Code: source},
	})
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: compile %s: %w", d.info.Name, label, err)
	}
	pipe, err := d.dev.CreateComputePipeline(&webgpu.ComputePipelineDescriptor{
		Label:   label,
		Compute: webgpu.ProgrammableStageDescriptor{Module: module, EntryPoint: entry},
	})
	if err != nil {
		module.Release()
		return nil, fmt.Errorf("wgpu: %s: pipeline %s (entry %q): %w", d.info.Name, label, entry, err)
	}
	return &pipeline{d: d, label: label, module: module, pipeline: pipe, layout: pipe.GetBindGroupLayout(0)}, nil
}

// CheckModule compiles WGSL source into a shader module, which validates it
// (naga's parser and validator), and releases the module.
func (d *Device) CheckModule(label, source string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	module, err := d.dev.CreateShaderModule(&webgpu.ShaderModuleDescriptor{
		Label:          label,
		WGSLDescriptor: &webgpu.ShaderModuleWGSLDescriptor{Code: source},
	})
	if err != nil {
		return fmt.Errorf("wgpu: %s: compile %s: %w", d.info.Name, label, err)
	}
	module.Release()
	return nil
}
