package wgpu

import (
	"crypto/sha256"
	"fmt"

	webgpu "github.com/rajveermalviya/go-webgpu/wgpu"
)

// Pipeline is a compiled compute pipeline. Its bindings are the storage and
// uniform buffers of @group(0), in @binding order.
type Pipeline struct {
	label    string
	module   *webgpu.ShaderModule
	pipeline *webgpu.ComputePipeline
	layout   *webgpu.BindGroupLayout
}

// Label is the name given at compilation.
func (p *Pipeline) Label() string { return p.label }

func (p *Pipeline) release() {
	p.layout.Release()
	p.pipeline.Release()
	p.module.Release()
}

type pipelineKey struct {
	source [sha256.Size]byte
	entry  string
}

// Pipeline compiles WGSL source and returns the compute pipeline for entry,
// or the cached one if the same source and entry were compiled before. A
// compile or validation error is returned with the label for context.
func (d *Device) Pipeline(label, source, entry string) (*Pipeline, error) {
	key := pipelineKey{source: sha256.Sum256([]byte(source)), entry: entry}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return nil, err
	}
	if p, ok := d.pipelines[key]; ok {
		return p, nil
	}
	module, err := d.dev.CreateShaderModule(&webgpu.ShaderModuleDescriptor{
		Label:          label,
		WGSLDescriptor: &webgpu.ShaderModuleWGSLDescriptor{Code: source},
	})
	if err != nil {
		return nil, fmt.Errorf("wgpu: %s: compile %s: %w", d.info.Name, label, err)
	}
	pipeline, err := d.dev.CreateComputePipeline(&webgpu.ComputePipelineDescriptor{
		Label:   label,
		Compute: webgpu.ProgrammableStageDescriptor{Module: module, EntryPoint: entry},
	})
	if err != nil {
		module.Release()
		return nil, fmt.Errorf("wgpu: %s: pipeline %s (entry %q): %w", d.info.Name, label, entry, err)
	}
	p := &Pipeline{label: label, module: module, pipeline: pipeline, layout: pipeline.GetBindGroupLayout(0)}
	d.pipelines[key] = p
	return p, nil
}
