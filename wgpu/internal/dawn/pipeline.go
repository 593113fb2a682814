//go:build linux && cgo

package dawn

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"sort"
	"unsafe"
)

// ShaderModule is compiled WGSL.
type ShaderModule struct {
	d     *Device
	c     C.WGPUShaderModule
	label string
	// Messages holds the compiler's warnings and notes (errors fail ShaderModule).
	Messages []CompileMessage

	released bool // guarded by d.mu
}

// Release releases the module. Safe to call more than once, from any goroutine.
func (m *ShaderModule) Release() {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	if !m.released {
		m.released = true
		C.ca_release_shader(m.d.in.lib.procs, m.c)
	}
}

// ShaderModule compiles WGSL. A module that does not compile returns a
// *CompileError (errors.Is(err, ErrCompile)) with the compiler's messages
// and their line and column. On BackendNull this validates WGSL, including
// enable directives no local adapter supports, without a GPU.
func (d *Device) ShaderModule(ctx context.Context, label, wgsl string) (*ShaderModule, error) {
	if err := d.lockUsable(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	cl := C.CString(label)
	defer C.free(unsafe.Pointer(cl))
	code := C.CString(wgsl)
	defer C.free(unsafe.Pointer(code))
	m := &ShaderModule{d: d, label: label}
	scopeErr := d.scoped(ctx, "compile "+label, func() {
		m.c = C.ca_create_shader(d.in.lib.procs, d.c, cl, code, C.size_t(len(wgsl)))
	})
	if m.c == nil {
		return nil, fmt.Errorf("dawn: %s: compile %s: %w", d.info.Name, label, scopeErr)
	}
	r, err := newResult()
	if err != nil {
		return nil, err
	}
	f := C.ca_compilation_info(d.in.lib.procs, m.c, r)
	res, err := d.in.await(ctx, f, r)
	if err != nil {
		C.ca_release_shader(d.in.lib.procs, m.c)
		return nil, err
	}
	var errs []CompileMessage
	for _, msg := range res.msgs {
		if msg.Severity == "error" {
			errs = append(errs, msg)
		} else {
			m.Messages = append(m.Messages, msg)
		}
	}
	if len(errs) > 0 || scopeErr != nil {
		C.ca_release_shader(d.in.lib.procs, m.c)
		if len(errs) == 0 {
			return nil, fmt.Errorf("dawn: %s: compile %s: %w", d.info.Name, label, scopeErr)
		}
		return nil, &CompileError{Label: label, Messages: errs}
	}
	return m, nil
}

// ComputePipeline is a compute pipeline with an automatic layout.
type ComputePipeline struct {
	d      *Device
	c      C.WGPUComputePipeline
	layout C.WGPUBindGroupLayout // of @group(0), fetched on first use
	label  string

	released bool // guarded by d.mu
}

// Label is the name given at creation.
func (p *ComputePipeline) Label() string { return p.label }

// Release releases the pipeline. Safe to call more than once, from any goroutine.
func (p *ComputePipeline) Release() {
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	if p.released {
		return
	}
	p.released = true
	if p.layout != nil {
		C.ca_release_layout(p.d.in.lib.procs, p.layout)
	}
	C.ca_release_pipeline(p.d.in.lib.procs, p.c)
}

// ComputePipeline creates the pipeline for entry point entry of m, with
// pipeline-overridable constants set from constants (WGSL `override`
// declarations, by name). Backend compilation errors are returned as
// *APIError.
func (d *Device) ComputePipeline(ctx context.Context, label string, m *ShaderModule, entry string, constants map[string]float64) (*ComputePipeline, error) {
	if err := d.lockUsable(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	if m.released {
		return nil, fmt.Errorf("dawn: pipeline %s: module %s: %w", label, m.label, ErrReleased)
	}
	keys := make([]string, 0, len(constants))
	for k := range constants {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ck, nk, free := cstrings(keys)
	defer free()
	vals := make([]C.double, len(keys))
	for i, k := range keys {
		vals[i] = C.double(constants[k])
	}
	var vp *C.double
	if len(vals) > 0 {
		vp = &vals[0]
	}
	cl := C.CString(label)
	defer C.free(unsafe.Pointer(cl))
	ce := C.CString(entry)
	defer C.free(unsafe.Pointer(ce))
	p := &ComputePipeline{d: d, label: label}
	err := d.scoped(ctx, fmt.Sprintf("pipeline %s (entry %q)", label, entry), func() {
		p.c = C.ca_create_pipeline(d.in.lib.procs, d.c, cl, m.c, ce, ck, vp, nk)
	})
	if err != nil {
		if p.c != nil {
			C.ca_release_pipeline(d.in.lib.procs, p.c)
		}
		return nil, fmt.Errorf("dawn: %s: %w", d.info.Name, err)
	}
	return p, nil
}

// Binding binds a range of a buffer to @group(0) @binding(Binding).
type Binding struct {
	Binding uint32
	Buffer  *Buffer
	Offset  uint64
	Size    uint64 // 0: the rest of the buffer from Offset
}

// BindGroup is a set of buffers bound to a pipeline's @group(0).
type BindGroup struct {
	d     *Device
	c     C.WGPUBindGroup
	label string

	released bool // guarded by d.mu
}

// Release releases the bind group. Safe to call more than once, from any goroutine.
func (g *BindGroup) Release() {
	g.d.mu.Lock()
	defer g.d.mu.Unlock()
	if !g.released {
		g.released = true
		C.ca_release_bind_group(g.d.in.lib.procs, g.c)
	}
}

// BindGroup binds buffers to p's @group(0). A binding the entry point does
// not declare, or a buffer of the wrong usage or size, is an *APIError
// wrapping ErrValidation.
func (d *Device) BindGroup(ctx context.Context, label string, p *ComputePipeline, bindings []Binding) (*BindGroup, error) {
	if err := d.lockUsable(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	if p.released {
		return nil, fmt.Errorf("dawn: bind group %s: pipeline %s: %w", label, p.label, ErrReleased)
	}
	n := len(bindings)
	slots := make([]C.uint32_t, n+1)
	bufs := make([]C.WGPUBuffer, n+1)
	offs := make([]C.uint64_t, n+1)
	sizes := make([]C.uint64_t, n+1)
	for i, b := range bindings {
		if b.Buffer == nil || b.Buffer.released {
			return nil, fmt.Errorf("dawn: bind group %s: binding %d: buffer missing or released: %w", label, b.Binding, ErrBadArgument)
		}
		size := b.Size
		if size == 0 && b.Offset < b.Buffer.size {
			size = b.Buffer.size - b.Offset
		}
		slots[i], bufs[i], offs[i], sizes[i] = C.uint32_t(b.Binding), b.Buffer.c, C.uint64_t(b.Offset), C.uint64_t(size)
	}
	cl := C.CString(label)
	defer C.free(unsafe.Pointer(cl))
	g := &BindGroup{d: d, label: label}
	err := d.scoped(ctx, "bind group "+label, func() {
		if p.layout == nil {
			p.layout = C.ca_bind_group_layout(d.in.lib.procs, p.c, 0)
		}
		g.c = C.ca_create_bind_group(d.in.lib.procs, d.c, cl, p.layout, C.size_t(n), &slots[0], &bufs[0], &offs[0], &sizes[0])
	})
	if err != nil {
		if g.c != nil {
			C.ca_release_bind_group(d.in.lib.procs, g.c)
		}
		return nil, fmt.Errorf("dawn: %s: %w", d.info.Name, err)
	}
	return g, nil
}
