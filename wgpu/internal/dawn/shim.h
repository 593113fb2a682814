// shim.h: the C side of package dawn. Every webgpu.h call goes through a
// table of function pointers filled at load time (dlsym, or dawn.node's ELF
// symbol table), so nothing here links against Dawn. Callbacks never call
// into Go: they fill C-allocated records that Go polls after waiting.
#ifndef COREATTN_DAWN_SHIM_H
#define COREATTN_DAWN_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "third_party/dawn/webgpu.h"

// The webgpu.h entry points the package uses, in table order.
#define CA_PROCS(X)                           \
	X(CreateInstance)                         \
	X(InstanceRequestAdapter)                 \
	X(InstanceProcessEvents)                  \
	X(InstanceWaitAny)                        \
	X(InstanceRelease)                        \
	X(AdapterGetInfo)                         \
	X(AdapterInfoFreeMembers)                 \
	X(AdapterGetFeatures)                     \
	X(AdapterHasFeature)                      \
	X(AdapterGetLimits)                       \
	X(SupportedFeaturesFreeMembers)           \
	X(AdapterPropertiesSubgroupMatrixConfigsFreeMembers) \
	X(AdapterRequestDevice)                   \
	X(AdapterRelease)                         \
	X(DeviceGetQueue)                         \
	X(DeviceHasFeature)                       \
	X(DeviceCreateBuffer)                     \
	X(DeviceCreateShaderModule)               \
	X(DeviceCreateComputePipeline)            \
	X(DeviceCreateBindGroup)                  \
	X(DeviceCreateCommandEncoder)             \
	X(DeviceCreateQuerySet)                   \
	X(DevicePushErrorScope)                   \
	X(DevicePopErrorScope)                    \
	X(DeviceDestroy)                          \
	X(DeviceRelease)                          \
	X(ShaderModuleGetCompilationInfo)         \
	X(ShaderModuleRelease)                    \
	X(ComputePipelineGetBindGroupLayout)      \
	X(ComputePipelineRelease)                 \
	X(BindGroupLayoutRelease)                 \
	X(BindGroupRelease)                       \
	X(BufferMapAsync)                         \
	X(BufferGetConstMappedRange)              \
	X(BufferUnmap)                            \
	X(BufferDestroy)                          \
	X(BufferRelease)                          \
	X(QuerySetDestroy)                        \
	X(QuerySetRelease)                        \
	X(QueueWriteBuffer)                       \
	X(QueueSubmit)                            \
	X(QueueOnSubmittedWorkDone)               \
	X(QueueRelease)                           \
	X(CommandEncoderBeginComputePass)         \
	X(CommandEncoderCopyBufferToBuffer)       \
	X(CommandEncoderResolveQuerySet)          \
	X(CommandEncoderFinish)                   \
	X(CommandEncoderRelease)                  \
	X(CommandBufferRelease)                   \
	X(ComputePassEncoderSetPipeline)          \
	X(ComputePassEncoderSetBindGroup)         \
	X(ComputePassEncoderDispatchWorkgroups)   \
	X(ComputePassEncoderEnd)                  \
	X(ComputePassEncoderRelease)

enum {
#define CA_INDEX(n) CA_##n,
	CA_PROCS(CA_INDEX)
#undef CA_INDEX
	CA_NPROCS
};

// ca_procs is one loaded library's entry points.
typedef struct ca_procs {
	void* fn[CA_NPROCS];
} ca_procs;

const char* ca_proc_name(int i);
int ca_nprocs(void);
ca_procs* ca_procs_new(void);
void ca_procs_set(ca_procs* p, int i, void* fn);
const char* ca_dlopen(const char* path, int lazy_global, void** handle);
void* ca_dlsym(void* handle, const char* name);
uintptr_t ca_load_bias(void* handle);
void* ca_offset(uintptr_t base, uint64_t off);
int ca_device_has(ca_procs* p, WGPUDevice d, uint32_t feature);
WGPUQueue ca_device_queue(ca_procs* p, WGPUDevice d);
int ca_install_dawn_procs(void* get_procs, void* set_procs);

// ca_result is the outcome of one asynchronous call. Go and the callback each
// hold a reference; whoever lets go last frees it, so Go may stop waiting
// (context cancelled) without the late callback writing freed memory.
typedef struct ca_message {
	uint32_t type;  // WGPUCompilationMessageType
	uint64_t line, col;
	char* text;
} ca_message;

typedef struct ca_result {
	int done;          // set (release) by the callback
	int refs;          // 2 while both Go and the callback hold it
	uint32_t status;   // the callback's status enum
	uint32_t type;     // WGPUErrorType for error scopes
	void* handle;      // WGPUAdapter or WGPUDevice for requests
	char* msg;         // malloc'd copy of the callback's message, or NULL
	size_t nmsgs;      // compilation messages
	ca_message* msgs;
} ca_result;

ca_result* ca_result_new(void);
int ca_result_done(ca_result* r);
void ca_result_release(ca_result* r);

// ca_sink collects a device's uncaptured errors and its loss. Its references
// are Go's and the device-lost callback's.
typedef struct ca_sink ca_sink;
ca_sink* ca_sink_new(void);
void ca_sink_release(ca_sink* s);
// ca_sink_take_error moves out the first uncaptured error (0 if none); *msg is
// malloc'd and the caller frees it. *dropped counts errors after the first.
uint32_t ca_sink_take_error(ca_sink* s, char** msg, uint32_t* dropped);
// ca_sink_lost reports whether the device is lost (reason, malloc'd message).
int ca_sink_lost(ca_sink* s, uint32_t* reason, char** msg);

// Flattened adapter description (strings truncated to their arrays).
typedef struct ca_adapter_info {
	char vendor[256], architecture[256], device[256], description[512];
	uint32_t backend, adapter_type, vendor_id, device_id, sg_min, sg_max;
	uint64_t max_storage_binding, max_buffer, max_uniform_binding;
	uint32_t max_wg_storage, max_invocations, max_wg_x, max_wg_y, max_wg_z;
	uint32_t max_wg_per_dim, max_storage_buffers, max_bind_groups, max_bindings;
	uint32_t min_storage_align, min_uniform_align;
	uint32_t nfeatures;
	uint32_t features[256];
	uint32_t nconfigs;      // subgroup-matrix configs, raw words below
	uint32_t config_words[64 * 8];
	int config_status;      // WGPUStatus of the config query, -1 if not asked
} ca_adapter_info;

WGPUInstance ca_create_instance(ca_procs* p, const char* const* toggles, size_t ntoggles, int timed_wait);
WGPUFuture ca_request_adapter(ca_procs* p, WGPUInstance inst, WGPUBackendType backend,
                              WGPUPowerPreference power, WGPUFeatureLevel level, int fallback,
                              const char* const* toggles, size_t ntoggles, ca_result* r);
int ca_adapter_info_get(ca_procs* p, WGPUAdapter a, int config_stride, ca_adapter_info* out);
WGPUFuture ca_request_device(ca_procs* p, WGPUAdapter a, const char* label,
                             const uint32_t* features, size_t nfeatures,
                             const char* const* enable, size_t nenable,
                             const char* const* disable, size_t ndisable,
                             ca_sink* sink, ca_result* r);

WGPUWaitStatus ca_wait_any(ca_procs* p, WGPUInstance inst, WGPUFuture f, uint64_t timeout_ns);
void ca_process_events(ca_procs* p, WGPUInstance inst);

void ca_push_scope(ca_procs* p, WGPUDevice d, WGPUErrorFilter filter);
WGPUFuture ca_pop_scope(ca_procs* p, WGPUDevice d, ca_result* r);

WGPUBuffer ca_create_buffer(ca_procs* p, WGPUDevice d, const char* label, uint64_t size, uint64_t usage);
void ca_write_buffer(ca_procs* p, WGPUQueue q, WGPUBuffer b, uint64_t off, const void* data, size_t size);
// ca_copy_buffer encodes and submits one buffer-to-buffer copy.
void ca_copy_buffer(ca_procs* p, WGPUDevice d, WGPUQueue q, WGPUBuffer src, uint64_t src_off,
                    WGPUBuffer dst, uint64_t dst_off, uint64_t size);
WGPUFuture ca_map_read(ca_procs* p, WGPUBuffer b, size_t off, size_t size, ca_result* r);
int ca_read_mapped(ca_procs* p, WGPUBuffer b, size_t off, size_t size, void* dst);
WGPUFuture ca_queue_done(ca_procs* p, WGPUQueue q, ca_result* r);

WGPUShaderModule ca_create_shader(ca_procs* p, WGPUDevice d, const char* label, const char* code, size_t len);
WGPUFuture ca_compilation_info(ca_procs* p, WGPUShaderModule m, ca_result* r);
WGPUComputePipeline ca_create_pipeline(ca_procs* p, WGPUDevice d, const char* label, WGPUShaderModule m,
                                       const char* entry, const char* const* keys, const double* values,
                                       size_t nconst);
WGPUBindGroup ca_create_bind_group(ca_procs* p, WGPUDevice d, const char* label, WGPUBindGroupLayout layout,
                                   size_t n, const uint32_t* bindings, const WGPUBuffer* buffers,
                                   const uint64_t* offsets, const uint64_t* sizes);
WGPUQuerySet ca_create_timestamps(ca_procs* p, WGPUDevice d, uint32_t count);

// ca_submit_passes encodes n compute passes (pass i: pipelines[i], bind group
// groups[i] at index 0, grid[3i..3i+2]) into one command buffer and submits
// it. With a query set, pass i writes timestamps 2i and 2i+1, which are
// resolved into resolve and copied into readback.
void ca_submit_passes(ca_procs* p, WGPUDevice d, WGPUQueue q, size_t n,
                      const WGPUComputePipeline* pipelines, const WGPUBindGroup* groups,
                      const uint32_t* grid, WGPUQuerySet qs, WGPUBuffer resolve, WGPUBuffer readback);

void ca_release_instance(ca_procs* p, WGPUInstance x);
void ca_release_adapter(ca_procs* p, WGPUAdapter x);
void ca_release_device(ca_procs* p, WGPUDevice x, WGPUQueue q);
void ca_release_buffer(ca_procs* p, WGPUBuffer x);
void ca_release_shader(ca_procs* p, WGPUShaderModule x);
void ca_release_pipeline(ca_procs* p, WGPUComputePipeline x);
void ca_release_layout(ca_procs* p, WGPUBindGroupLayout x);
void ca_release_bind_group(ca_procs* p, WGPUBindGroup x);
void ca_release_query_set(ca_procs* p, WGPUQuerySet x);
WGPUBindGroupLayout ca_bind_group_layout(ca_procs* p, WGPUComputePipeline x, uint32_t group);

#endif
