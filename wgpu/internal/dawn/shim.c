//go:build linux && cgo

// shim.c: descriptors, callbacks and the calls through the table of entry
// points. See shim.h for the ownership rules.
#define _GNU_SOURCE
#include "shim.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define P(p, name) ((WGPUProc##name)(p)->fn[CA_##name])

static const char* const ca_names[] = {
#define CA_NAME(n) "wgpu" #n,
	CA_PROCS(CA_NAME)
#undef CA_NAME
};

const char* ca_proc_name(int i) { return ca_names[i]; }
int ca_nprocs(void) { return CA_NPROCS; }
ca_procs* ca_procs_new(void) { return calloc(1, sizeof(ca_procs)); }
void ca_procs_set(ca_procs* p, int i, void* fn) { p->fn[i] = fn; }

// ca_dlopen returns NULL or a malloc'd copy of dlerror's text. dawn.node is
// opened lazily so that N-API imports the package does not define (none in
// the pinned build) fail only if called, which they never are.
const char* ca_dlopen(const char* path, int lazy, void** handle) {
	*handle = dlopen(path, (lazy ? RTLD_LAZY : RTLD_NOW) | RTLD_LOCAL);
	if (*handle) return NULL;
	const char* e = dlerror();
	return strdup(e ? e : "dlopen failed");
}

void* ca_dlsym(void* handle, const char* name) { return dlsym(handle, name); }

// ca_load_bias is the address the object was loaded at, to which ELF symbol
// values are relative.
uintptr_t ca_load_bias(void* handle) {
	struct link_map* lm = NULL;
	if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm) return 0;
	return (uintptr_t)lm->l_addr;
}

void* ca_offset(uintptr_t base, uint64_t off) { return (void*)(base + off); }

// dawn.node's wgpu* functions forward to a static proc table that Node's
// module initialisation fills; fill it the same way, with Dawn native's procs.
int ca_install_dawn_procs(void* get_procs, void* set_procs) {
	const void* (*get)(void) = (const void* (*)(void))get_procs;
	void (*set)(const void*) = (void (*)(const void*))set_procs;
	const void* table = get();
	if (!table) return -1;
	set(table);
	return 0;
}

static WGPUStringView sv(const char* s) {
	WGPUStringView v = {s, s ? WGPU_STRLEN : 0};
	return v;
}

static char* sv_dup(WGPUStringView v) {
	if (!v.data) return NULL;
	size_t n = v.length == WGPU_STRLEN ? strlen(v.data) : v.length;
	char* s = malloc(n + 1);
	if (!s) return NULL;
	memcpy(s, v.data, n);
	s[n] = 0;
	return s;
}

static void sv_copy(char* dst, size_t cap, WGPUStringView v) {
	dst[0] = 0;
	if (!v.data) return;
	size_t n = v.length == WGPU_STRLEN ? strlen(v.data) : v.length;
	if (n >= cap) n = cap - 1;
	memcpy(dst, v.data, n);
	dst[n] = 0;
}

// ---------------------------------------------------------------- results

ca_result* ca_result_new(void) {
	ca_result* r = calloc(1, sizeof(ca_result));
	if (r) r->refs = 2;
	return r;
}

int ca_result_done(ca_result* r) { return __atomic_load_n(&r->done, __ATOMIC_ACQUIRE); }

void ca_result_release(ca_result* r) {
	if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
	free(r->msg);
	for (size_t i = 0; i < r->nmsgs; i++) free(r->msgs[i].text);
	free(r->msgs);
	free(r);
}

static void finish(ca_result* r) {
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	ca_result_release(r);
}

static void on_adapter(WGPURequestAdapterStatus status, WGPUAdapter adapter, WGPUStringView message,
                       void* ud1, void* ud2) {
	(void)ud2;
	ca_result* r = ud1;
	r->status = status;
	r->handle = adapter;
	r->msg = sv_dup(message);
	finish(r);
}

static void on_device(WGPURequestDeviceStatus status, WGPUDevice device, WGPUStringView message,
                      void* ud1, void* ud2) {
	(void)ud2;
	ca_result* r = ud1;
	r->status = status;
	r->handle = device;
	r->msg = sv_dup(message);
	finish(r);
}

static void on_pop(WGPUPopErrorScopeStatus status, WGPUErrorType type, WGPUStringView message,
                   void* ud1, void* ud2) {
	(void)ud2;
	ca_result* r = ud1;
	r->status = status;
	r->type = type;
	r->msg = sv_dup(message);
	finish(r);
}

static void on_map(WGPUMapAsyncStatus status, WGPUStringView message, void* ud1, void* ud2) {
	(void)ud2;
	ca_result* r = ud1;
	r->status = status;
	r->msg = sv_dup(message);
	finish(r);
}

static void on_done(WGPUQueueWorkDoneStatus status, WGPUStringView message, void* ud1, void* ud2) {
	(void)ud2;
	ca_result* r = ud1;
	r->status = status;
	r->msg = sv_dup(message);
	finish(r);
}

static void on_compilation(WGPUCompilationInfoRequestStatus status, const WGPUCompilationInfo* info,
                           void* ud1, void* ud2) {
	(void)ud2;
	ca_result* r = ud1;
	r->status = status;
	if (info && info->messageCount) {
		r->msgs = calloc(info->messageCount, sizeof(ca_message));
		if (r->msgs) {
			r->nmsgs = info->messageCount;
			for (size_t i = 0; i < info->messageCount; i++) {
				const WGPUCompilationMessage* m = &info->messages[i];
				r->msgs[i].type = m->type;
				r->msgs[i].line = m->lineNum;
				r->msgs[i].col = m->linePos;
				r->msgs[i].text = sv_dup(m->message);
			}
		}
	}
	finish(r);
}

// ---------------------------------------------------------------- sink

struct ca_sink {
	pthread_mutex_t mu;
	int refs;
	uint32_t err_type;  // first error not yet taken, 0 if none
	char* err_msg;
	uint32_t dropped;
	int lost;
	uint32_t lost_reason;
	char* lost_msg;
};

ca_sink* ca_sink_new(void) {
	ca_sink* s = calloc(1, sizeof(ca_sink));
	if (!s) return NULL;
	pthread_mutex_init(&s->mu, NULL);
	s->refs = 2;
	return s;
}

void ca_sink_release(ca_sink* s) {
	pthread_mutex_lock(&s->mu);
	int left = --s->refs;
	pthread_mutex_unlock(&s->mu);
	if (left) return;
	pthread_mutex_destroy(&s->mu);
	free(s->err_msg);
	free(s->lost_msg);
	free(s);
}

static void on_uncaptured(const WGPUDevice* device, WGPUErrorType type, WGPUStringView message,
                          void* ud1, void* ud2) {
	(void)device;
	(void)ud2;
	ca_sink* s = ud1;
	pthread_mutex_lock(&s->mu);
	if (!s->err_type) {
		s->err_type = type;
		s->err_msg = sv_dup(message);
	} else {
		s->dropped++;
	}
	pthread_mutex_unlock(&s->mu);
}

static void on_lost(const WGPUDevice* device, WGPUDeviceLostReason reason, WGPUStringView message,
                    void* ud1, void* ud2) {
	(void)device;
	(void)ud2;
	ca_sink* s = ud1;
	pthread_mutex_lock(&s->mu);
	s->lost = 1;
	s->lost_reason = reason;
	s->lost_msg = sv_dup(message);
	pthread_mutex_unlock(&s->mu);
	ca_sink_release(s);
}

uint32_t ca_sink_take_error(ca_sink* s, char** msg, uint32_t* dropped) {
	pthread_mutex_lock(&s->mu);
	uint32_t t = s->err_type;
	*msg = s->err_msg;
	*dropped = s->dropped;
	s->err_type = 0;
	s->err_msg = NULL;
	s->dropped = 0;
	pthread_mutex_unlock(&s->mu);
	return t;
}

int ca_sink_lost(ca_sink* s, uint32_t* reason, char** msg) {
	pthread_mutex_lock(&s->mu);
	int lost = s->lost;
	*reason = s->lost_reason;
	*msg = lost && s->lost_msg ? strdup(s->lost_msg) : NULL;
	pthread_mutex_unlock(&s->mu);
	return lost;
}

// ---------------------------------------------------------------- instance, adapter, device

static WGPUDawnTogglesDescriptor toggles(const char* const* enable, size_t nenable,
                                         const char* const* disable, size_t ndisable) {
	WGPUDawnTogglesDescriptor t;
	memset(&t, 0, sizeof(t));
	t.chain.sType = WGPUSType_DawnTogglesDescriptor;
	t.enabledToggleCount = nenable;
	t.enabledToggles = enable;
	t.disabledToggleCount = ndisable;
	t.disabledToggles = disable;
	return t;
}

WGPUInstance ca_create_instance(ca_procs* p, const char* const* tg, size_t ntg, int timed_wait) {
	WGPUDawnTogglesDescriptor t = toggles(tg, ntg, NULL, 0);
	WGPUInstanceFeatureName feats[1] = {WGPUInstanceFeatureName_TimedWaitAny};
	WGPUInstanceDescriptor d;
	memset(&d, 0, sizeof(d));
	d.nextInChain = &t.chain;
	if (timed_wait) {
		d.requiredFeatureCount = 1;
		d.requiredFeatures = feats;
	}
	return P(p, CreateInstance)(&d);
}

WGPUFuture ca_request_adapter(ca_procs* p, WGPUInstance inst, WGPUBackendType backend,
                              WGPUPowerPreference power, WGPUFeatureLevel level, int fallback,
                              const char* const* tg, size_t ntg, ca_result* r) {
	WGPUDawnTogglesDescriptor t = toggles(tg, ntg, NULL, 0);
	WGPURequestAdapterOptions o;
	memset(&o, 0, sizeof(o));
	o.nextInChain = &t.chain;
	o.featureLevel = level;
	o.powerPreference = power;
	o.forceFallbackAdapter = fallback ? 1 : 0;
	o.backendType = backend;
	WGPURequestAdapterCallbackInfo ci;
	memset(&ci, 0, sizeof(ci));
	ci.mode = WGPUCallbackMode_AllowProcessEvents;
	ci.callback = on_adapter;
	ci.userdata1 = r;
	return P(p, InstanceRequestAdapter)(inst, &o, ci);
}

// Structs the library fills are given 4 KiB, so that a newer build whose
// struct grew past this header's writes into memory we own.
enum { kPad = 4096 };

int ca_adapter_info_get(ca_procs* p, WGPUAdapter a, int stride, ca_adapter_info* out) {
	memset(out, 0, sizeof(*out));
	out->config_status = -1;
	WGPUAdapterInfo* info = calloc(1, kPad);
	WGPULimits* lim = calloc(1, kPad);
	if (!info || !lim) {
		free(info);
		free(lim);
		return -1;
	}
	if (P(p, AdapterGetInfo)(a, info) != WGPUStatus_Success) {
		free(info);
		free(lim);
		return -2;
	}
	sv_copy(out->vendor, sizeof(out->vendor), info->vendor);
	sv_copy(out->architecture, sizeof(out->architecture), info->architecture);
	sv_copy(out->device, sizeof(out->device), info->device);
	sv_copy(out->description, sizeof(out->description), info->description);
	out->backend = info->backendType;
	out->adapter_type = info->adapterType;
	out->vendor_id = info->vendorID;
	out->device_id = info->deviceID;
	out->sg_min = info->subgroupMinSize;
	out->sg_max = info->subgroupMaxSize;
	P(p, AdapterInfoFreeMembers)(*info);
	free(info);

	if (P(p, AdapterGetLimits)(a, lim) == WGPUStatus_Success) {
		out->max_storage_binding = lim->maxStorageBufferBindingSize;
		out->max_buffer = lim->maxBufferSize;
		out->max_uniform_binding = lim->maxUniformBufferBindingSize;
		out->max_wg_storage = lim->maxComputeWorkgroupStorageSize;
		out->max_invocations = lim->maxComputeInvocationsPerWorkgroup;
		out->max_wg_x = lim->maxComputeWorkgroupSizeX;
		out->max_wg_y = lim->maxComputeWorkgroupSizeY;
		out->max_wg_z = lim->maxComputeWorkgroupSizeZ;
		out->max_wg_per_dim = lim->maxComputeWorkgroupsPerDimension;
		out->max_storage_buffers = lim->maxStorageBuffersPerShaderStage;
		out->max_bind_groups = lim->maxBindGroups;
		out->max_bindings = lim->maxBindingsPerBindGroup;
		out->min_storage_align = lim->minStorageBufferOffsetAlignment;
		out->min_uniform_align = lim->minUniformBufferOffsetAlignment;
	}
	free(lim);

	WGPUSupportedFeatures f;
	memset(&f, 0, sizeof(f));
	P(p, AdapterGetFeatures)(a, &f);
	for (size_t i = 0; i < f.featureCount && i < 256; i++) out->features[i] = f.features[i];
	out->nfeatures = f.featureCount < 256 ? (uint32_t)f.featureCount : 256;
	P(p, SupportedFeaturesFreeMembers)(f);

	if (stride >= 5 && stride <= 8 &&
	    P(p, AdapterHasFeature)(a, WGPUFeatureName_ChromiumExperimentalSubgroupMatrix)) {
		WGPUAdapterInfo* info2 = calloc(1, kPad);
		if (!info2) return -1;
		WGPUAdapterPropertiesSubgroupMatrixConfigs smc;
		memset(&smc, 0, sizeof(smc));
		smc.chain.sType = WGPUSType_AdapterPropertiesSubgroupMatrixConfigs;
		info2->nextInChain = &smc.chain;
		out->config_status = P(p, AdapterGetInfo)(a, info2);
		if (out->config_status == WGPUStatus_Success) {
			size_t n = smc.configCount < 64 ? smc.configCount : 64;
			memcpy(out->config_words, smc.configs, n * (size_t)stride * 4);
			out->nconfigs = (uint32_t)n;
			P(p, AdapterPropertiesSubgroupMatrixConfigsFreeMembers)(smc);
		}
		info2->nextInChain = NULL;
		P(p, AdapterInfoFreeMembers)(*info2);
		free(info2);
	}
	return 0;
}

WGPUFuture ca_request_device(ca_procs* p, WGPUAdapter a, const char* label, const uint32_t* features,
                             size_t nfeatures, const char* const* enable, size_t nenable,
                             const char* const* disable, size_t ndisable, ca_sink* sink, ca_result* r) {
	WGPUDawnTogglesDescriptor t = toggles(enable, nenable, disable, ndisable);
	// The adapter's own limits, handed back as the bytes the library wrote.
	WGPULimits* lim = calloc(1, kPad);
	if (lim && P(p, AdapterGetLimits)(a, lim) != WGPUStatus_Success) {
		free(lim);
		lim = NULL;
	}
	WGPUDeviceDescriptor d;
	memset(&d, 0, sizeof(d));
	d.nextInChain = &t.chain;
	d.label = sv(label);
	d.requiredFeatureCount = nfeatures;
	d.requiredFeatures = (const WGPUFeatureName*)features;
	d.requiredLimits = lim;
	d.deviceLostCallbackInfo.mode = WGPUCallbackMode_AllowProcessEvents;
	d.deviceLostCallbackInfo.callback = on_lost;
	d.deviceLostCallbackInfo.userdata1 = sink;
	d.uncapturedErrorCallbackInfo.callback = on_uncaptured;
	d.uncapturedErrorCallbackInfo.userdata1 = sink;
	WGPURequestDeviceCallbackInfo ci;
	memset(&ci, 0, sizeof(ci));
	ci.mode = WGPUCallbackMode_AllowProcessEvents;
	ci.callback = on_device;
	ci.userdata1 = r;
	WGPUFuture f = P(p, AdapterRequestDevice)(a, &d, ci);
	free(lim);
	return f;
}

// ---------------------------------------------------------------- waiting and errors

WGPUWaitStatus ca_wait_any(ca_procs* p, WGPUInstance inst, WGPUFuture f, uint64_t timeout_ns) {
	WGPUFutureWaitInfo w;
	memset(&w, 0, sizeof(w));
	w.future = f;
	return P(p, InstanceWaitAny)(inst, 1, &w, timeout_ns);
}

int ca_device_has(ca_procs* p, WGPUDevice d, uint32_t feature) {
	return P(p, DeviceHasFeature)(d, (WGPUFeatureName)feature) ? 1 : 0;
}

WGPUQueue ca_device_queue(ca_procs* p, WGPUDevice d) { return P(p, DeviceGetQueue)(d); }

void ca_process_events(ca_procs* p, WGPUInstance inst) { P(p, InstanceProcessEvents)(inst); }

void ca_push_scope(ca_procs* p, WGPUDevice d, WGPUErrorFilter filter) {
	P(p, DevicePushErrorScope)(d, filter);
}

WGPUFuture ca_pop_scope(ca_procs* p, WGPUDevice d, ca_result* r) {
	WGPUPopErrorScopeCallbackInfo ci;
	memset(&ci, 0, sizeof(ci));
	ci.mode = WGPUCallbackMode_AllowProcessEvents;
	ci.callback = on_pop;
	ci.userdata1 = r;
	return P(p, DevicePopErrorScope)(d, ci);
}

// ---------------------------------------------------------------- buffers

WGPUBuffer ca_create_buffer(ca_procs* p, WGPUDevice d, const char* label, uint64_t size, uint64_t usage) {
	WGPUBufferDescriptor bd;
	memset(&bd, 0, sizeof(bd));
	bd.label = sv(label);
	bd.usage = usage;
	bd.size = size;
	return P(p, DeviceCreateBuffer)(d, &bd);
}

void ca_write_buffer(ca_procs* p, WGPUQueue q, WGPUBuffer b, uint64_t off, const void* data, size_t size) {
	P(p, QueueWriteBuffer)(q, b, off, data, size);
}

void ca_copy_buffer(ca_procs* p, WGPUDevice d, WGPUQueue q, WGPUBuffer src, uint64_t src_off,
                    WGPUBuffer dst, uint64_t dst_off, uint64_t size) {
	WGPUCommandEncoderDescriptor ed;
	memset(&ed, 0, sizeof(ed));
	WGPUCommandEncoder enc = P(p, DeviceCreateCommandEncoder)(d, &ed);
	P(p, CommandEncoderCopyBufferToBuffer)(enc, src, src_off, dst, dst_off, size);
	WGPUCommandBufferDescriptor cd;
	memset(&cd, 0, sizeof(cd));
	WGPUCommandBuffer cb = P(p, CommandEncoderFinish)(enc, &cd);
	P(p, QueueSubmit)(q, 1, &cb);
	P(p, CommandBufferRelease)(cb);
	P(p, CommandEncoderRelease)(enc);
}

WGPUFuture ca_map_read(ca_procs* p, WGPUBuffer b, size_t off, size_t size, ca_result* r) {
	WGPUBufferMapCallbackInfo ci;
	memset(&ci, 0, sizeof(ci));
	ci.mode = WGPUCallbackMode_AllowProcessEvents;
	ci.callback = on_map;
	ci.userdata1 = r;
	return P(p, BufferMapAsync)(b, WGPUMapMode_Read, off, size, ci);
}

int ca_read_mapped(ca_procs* p, WGPUBuffer b, size_t off, size_t size, void* dst) {
	const void* src = P(p, BufferGetConstMappedRange)(b, off, size);
	if (src) memcpy(dst, src, size);
	P(p, BufferUnmap)(b);
	return src ? 0 : -1;
}

WGPUFuture ca_queue_done(ca_procs* p, WGPUQueue q, ca_result* r) {
	WGPUQueueWorkDoneCallbackInfo ci;
	memset(&ci, 0, sizeof(ci));
	ci.mode = WGPUCallbackMode_AllowProcessEvents;
	ci.callback = on_done;
	ci.userdata1 = r;
	return P(p, QueueOnSubmittedWorkDone)(q, ci);
}

// ---------------------------------------------------------------- shaders, pipelines, bind groups

WGPUShaderModule ca_create_shader(ca_procs* p, WGPUDevice d, const char* label, const char* code, size_t len) {
	WGPUShaderSourceWGSL src;
	memset(&src, 0, sizeof(src));
	src.chain.sType = WGPUSType_ShaderSourceWGSL;
	src.code.data = code;
	src.code.length = len;
	WGPUShaderModuleDescriptor md;
	memset(&md, 0, sizeof(md));
	md.nextInChain = &src.chain;
	md.label = sv(label);
	return P(p, DeviceCreateShaderModule)(d, &md);
}

WGPUFuture ca_compilation_info(ca_procs* p, WGPUShaderModule m, ca_result* r) {
	WGPUCompilationInfoCallbackInfo ci;
	memset(&ci, 0, sizeof(ci));
	ci.mode = WGPUCallbackMode_AllowProcessEvents;
	ci.callback = on_compilation;
	ci.userdata1 = r;
	return P(p, ShaderModuleGetCompilationInfo)(m, ci);
}

WGPUComputePipeline ca_create_pipeline(ca_procs* p, WGPUDevice d, const char* label, WGPUShaderModule m,
                                       const char* entry, const char* const* keys, const double* values,
                                       size_t nconst) {
	WGPUConstantEntry* c = NULL;
	if (nconst) {
		c = calloc(nconst, sizeof(WGPUConstantEntry));
		if (!c) return NULL;
		for (size_t i = 0; i < nconst; i++) {
			c[i].key = sv(keys[i]);
			c[i].value = values[i];
		}
	}
	WGPUComputePipelineDescriptor pd;
	memset(&pd, 0, sizeof(pd));
	pd.label = sv(label);
	pd.compute.module = m;
	pd.compute.entryPoint = sv(entry);
	pd.compute.constantCount = nconst;
	pd.compute.constants = c;
	WGPUComputePipeline pipe = P(p, DeviceCreateComputePipeline)(d, &pd);
	free(c);
	return pipe;
}

WGPUBindGroupLayout ca_bind_group_layout(ca_procs* p, WGPUComputePipeline x, uint32_t group) {
	return P(p, ComputePipelineGetBindGroupLayout)(x, group);
}

WGPUBindGroup ca_create_bind_group(ca_procs* p, WGPUDevice d, const char* label, WGPUBindGroupLayout layout,
                                   size_t n, const uint32_t* bindings, const WGPUBuffer* buffers,
                                   const uint64_t* offsets, const uint64_t* sizes) {
	WGPUBindGroupEntry* e = calloc(n ? n : 1, sizeof(WGPUBindGroupEntry));
	if (!e) return NULL;
	for (size_t i = 0; i < n; i++) {
		e[i].binding = bindings[i];
		e[i].buffer = buffers[i];
		e[i].offset = offsets[i];
		e[i].size = sizes[i];
	}
	WGPUBindGroupDescriptor bd;
	memset(&bd, 0, sizeof(bd));
	bd.label = sv(label);
	bd.layout = layout;
	bd.entryCount = n;
	bd.entries = e;
	WGPUBindGroup g = P(p, DeviceCreateBindGroup)(d, &bd);
	free(e);
	return g;
}

WGPUQuerySet ca_create_timestamps(ca_procs* p, WGPUDevice d, uint32_t count) {
	WGPUQuerySetDescriptor qd;
	memset(&qd, 0, sizeof(qd));
	qd.type = WGPUQueryType_Timestamp;
	qd.count = count;
	return P(p, DeviceCreateQuerySet)(d, &qd);
}

void ca_submit_passes(ca_procs* p, WGPUDevice d, WGPUQueue q, size_t n, const WGPUComputePipeline* pipelines,
                      const WGPUBindGroup* groups, const uint32_t* grid, WGPUQuerySet qs,
                      WGPUBuffer resolve, WGPUBuffer readback) {
	WGPUCommandEncoderDescriptor ed;
	memset(&ed, 0, sizeof(ed));
	WGPUCommandEncoder enc = P(p, DeviceCreateCommandEncoder)(d, &ed);
	for (size_t i = 0; i < n; i++) {
		WGPUPassTimestampWrites tw;
		memset(&tw, 0, sizeof(tw));
		WGPUComputePassDescriptor pd;
		memset(&pd, 0, sizeof(pd));
		if (qs) {
			tw.querySet = qs;
			tw.beginningOfPassWriteIndex = (uint32_t)(2 * i);
			tw.endOfPassWriteIndex = (uint32_t)(2 * i + 1);
			pd.timestampWrites = &tw;
		}
		WGPUComputePassEncoder pass = P(p, CommandEncoderBeginComputePass)(enc, &pd);
		P(p, ComputePassEncoderSetPipeline)(pass, pipelines[i]);
		if (groups[i]) P(p, ComputePassEncoderSetBindGroup)(pass, 0, groups[i], 0, NULL);
		P(p, ComputePassEncoderDispatchWorkgroups)(pass, grid[3 * i], grid[3 * i + 1], grid[3 * i + 2]);
		P(p, ComputePassEncoderEnd)(pass);
		P(p, ComputePassEncoderRelease)(pass);
	}
	if (qs) {
		P(p, CommandEncoderResolveQuerySet)(enc, qs, 0, (uint32_t)(2 * n), resolve, 0);
		P(p, CommandEncoderCopyBufferToBuffer)(enc, resolve, 0, readback, 0, 16 * (uint64_t)n);
	}
	WGPUCommandBufferDescriptor cd;
	memset(&cd, 0, sizeof(cd));
	WGPUCommandBuffer cb = P(p, CommandEncoderFinish)(enc, &cd);
	P(p, QueueSubmit)(q, 1, &cb);
	P(p, CommandBufferRelease)(cb);
	P(p, CommandEncoderRelease)(enc);
}

// ---------------------------------------------------------------- release

void ca_release_instance(ca_procs* p, WGPUInstance x) {
	P(p, InstanceProcessEvents)(x);
	P(p, InstanceRelease)(x);
}
void ca_release_adapter(ca_procs* p, WGPUAdapter x) { P(p, AdapterRelease)(x); }
void ca_release_device(ca_procs* p, WGPUDevice x, WGPUQueue q) {
	if (q) P(p, QueueRelease)(q);
	P(p, DeviceDestroy)(x);
	P(p, DeviceRelease)(x);
}
void ca_release_buffer(ca_procs* p, WGPUBuffer x) {
	P(p, BufferDestroy)(x);
	P(p, BufferRelease)(x);
}
void ca_release_shader(ca_procs* p, WGPUShaderModule x) { P(p, ShaderModuleRelease)(x); }
void ca_release_pipeline(ca_procs* p, WGPUComputePipeline x) { P(p, ComputePipelineRelease)(x); }
void ca_release_layout(ca_procs* p, WGPUBindGroupLayout x) { P(p, BindGroupLayoutRelease)(x); }
void ca_release_bind_group(ca_procs* p, WGPUBindGroup x) { P(p, BindGroupRelease)(x); }
void ca_release_query_set(ca_procs* p, WGPUQuerySet x) {
	P(p, QuerySetDestroy)(x);
	P(p, QuerySetRelease)(x);
}
