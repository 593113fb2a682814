package wgpu

import (
	"crypto/sha256"
	"fmt"
	"reflect"

	"github.com/coreattn/coreattn/wgpu/internal/backend"
)

// Pipeline is a compiled compute pipeline. Its bindings are the storage and
// uniform buffers of @group(0), in @binding order.
type Pipeline struct {
	label string
	dev   *Device
	impl  backend.Pipeline
}

// Label is the name given at compilation.
func (p *Pipeline) Label() string { return p.label }

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
	if d.closed {
		return nil, d.impl.Err()
	}
	if p, ok := d.pipelines[key]; ok {
		return p, nil
	}
	impl, err := d.impl.Pipeline(label, source, entry)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{label: label, dev: d, impl: impl}
	d.pipelines[key] = p
	return p, nil
}

// Kernel is what a pipeline is compiled from: WGSL source, its entry point,
// and a label that names it in errors.
type Kernel struct{ Label, Source, Entry string }

// PipelineFor returns the pipeline that an earlier call cached under key,
// or compiles the kernel that gen returns (as Pipeline does, and sharing
// its cache of sources) and caches it under key. The key is any comparable
// value that determines the kernel, such as a tiling struct of the caller's
// package (a type of its own, so that packages cannot collide, as with
// context keys): a repeated call costs one map lookup, with no source
// generated or hashed.
func (d *Device) PipelineFor(key any, gen func() (Kernel, error)) (*Pipeline, error) {
	if key == nil || !reflect.TypeOf(key).Comparable() {
		return nil, fmt.Errorf("wgpu: pipeline key %T is not comparable", key)
	}
	if err := d.impl.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	p, ok := d.keyed[key]
	d.mu.Unlock()
	if ok {
		return p, nil
	}
	k, err := gen()
	if err != nil {
		return nil, err
	}
	if p, err = d.Pipeline(k.Label, k.Source, k.Entry); err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.keyed != nil {
		d.keyed[key] = p
	}
	d.mu.Unlock()
	return p, nil
}

// CheckModule compiles WGSL source into a shader module, which validates it
// (naga's parser and validator on go-webgpu, Tint on Dawn), and releases the
// module: no pipeline is created and nothing runs. For tests and tools that
// check many kernels.
func (d *Device) CheckModule(label, source string) error {
	return d.impl.CheckModule(label, source)
}
