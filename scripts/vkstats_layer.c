// vkstats_layer is a Vulkan layer that prints what the driver says of every
// compute pipeline a program creates (VK_KHR_pipeline_executable_properties:
// on NVIDIA registers per invocation, stack and shared memory), so that the
// SPIR-V that wgpu itself generates can be inspected, not an offline
// translation of it (scripts/vkstats.c with naga's CLI, a newer naga than
// wgpu's). It enables the extension on every device it sees and asks for
// statistics on every compute pipeline; one line per pipeline goes to
// stderr:
//
//	vkstats: dqs_main: Register Count=149 Binary Size=27904 Stack Size=0 ...
//
// Build (Debian's libvulkan-dev) and use, e.g. on the device:
//
//	mkdir -p .dev/layer && cp scripts/vkstats_layer.json .dev/layer/
//	gcc -O1 -shared -fPIC -o .dev/layer/libvkstats_layer.so scripts/vkstats_layer.c
//	VK_LAYER_PATH=.dev/layer VK_INSTANCE_LAYERS=VK_LAYER_COREATTN_stats .dev/coreattn bench ...
//
// It prints the robustness features the program asked for and whether it
// zero-initialises workgroup memory natively; with VKSTATS_NO_ROBUST or
// VKSTATS_NO_ZERO set it turns them off, to measure what they cost (never
// for results: out-of-bounds accesses or workgroup memory are then
// undefined). VKSTATS_LOG lists the device's extensions and feature structs.
//
// With VKSTATS_DUMP=dir it also writes every shader module's SPIR-V there
// (module-000.spv, ...), the SPIR-V as wgpu's naga made it.
//
// A diagnostic tool: one instance and a few devices at a time, no locking.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>
#include <vulkan/vk_layer.h>

#define EXPORT __attribute__((visibility("default")))
#define MAXDEV 8

static PFN_vkGetInstanceProcAddr next_gipa;
static struct {
	VkDevice dev;
	PFN_vkGetDeviceProcAddr gdpa;
	PFN_vkCreateComputePipelines create;
	PFN_vkCreateShaderModule module;
	PFN_vkGetPipelineExecutablePropertiesKHR props;
	PFN_vkGetPipelineExecutableStatisticsKHR stats;
} devs[MAXDEV];

static VkResult VKAPI_CALL layer_CreateInstance(const VkInstanceCreateInfo *ci, const VkAllocationCallbacks *alloc, VkInstance *inst) {
	VkLayerInstanceCreateInfo *li = (VkLayerInstanceCreateInfo *)ci->pNext;
	while (li && !(li->sType == VK_STRUCTURE_TYPE_LOADER_INSTANCE_CREATE_INFO && li->function == VK_LAYER_LINK_INFO))
		li = (VkLayerInstanceCreateInfo *)li->pNext;
	if (!li)
		return VK_ERROR_INITIALIZATION_FAILED;
	next_gipa = li->u.pLayerInfo->pfnNextGetInstanceProcAddr;
	li->u.pLayerInfo = li->u.pLayerInfo->pNext;
	PFN_vkCreateInstance create = (PFN_vkCreateInstance)next_gipa(VK_NULL_HANDLE, "vkCreateInstance");
	return create(ci, alloc, inst);
}

// robustness prints the robustness features the program enables and, with
// VKSTATS_NO_ROBUST set, turns them off (in c, in f10 and in place in c's
// chain): to measure what they cost, never to run for results.
static void robustness(VkDeviceCreateInfo *c, VkPhysicalDeviceFeatures *f10) {
	int off = getenv("VKSTATS_NO_ROBUST") != NULL;
	if (c->pEnabledFeatures) {
		*f10 = *c->pEnabledFeatures;
		fprintf(stderr, "vkstats: robustBufferAccess=%u%s\n", f10->robustBufferAccess, off ? " (turned off)" : "");
		if (off)
			f10->robustBufferAccess = VK_FALSE;
		c->pEnabledFeatures = f10;
	}
	for (VkBaseOutStructure *p = (VkBaseOutStructure *)c->pNext; p; p = p->pNext) {
		if (p->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2) {
			VkPhysicalDeviceFeatures2 *f = (VkPhysicalDeviceFeatures2 *)p;
			fprintf(stderr, "vkstats: features2 robustBufferAccess=%u%s\n", f->features.robustBufferAccess, off ? " (turned off)" : "");
			if (off)
				f->features.robustBufferAccess = VK_FALSE;
		} else if (p->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ROBUSTNESS_2_FEATURES_EXT) {
			VkPhysicalDeviceRobustness2FeaturesEXT *f = (VkPhysicalDeviceRobustness2FeaturesEXT *)p;
			fprintf(stderr, "vkstats: robustBufferAccess2=%u robustImageAccess2=%u nullDescriptor=%u%s\n", f->robustBufferAccess2, f->robustImageAccess2, f->nullDescriptor, off ? " (turned off)" : "");
			if (off)
				f->robustBufferAccess2 = f->robustImageAccess2 = VK_FALSE;
		} else if (p->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ZERO_INITIALIZE_WORKGROUP_MEMORY_FEATURES) {
			VkPhysicalDeviceZeroInitializeWorkgroupMemoryFeatures *f = (VkPhysicalDeviceZeroInitializeWorkgroupMemoryFeatures *)p;
			int nz = getenv("VKSTATS_NO_ZERO") != NULL;
			fprintf(stderr, "vkstats: shaderZeroInitializeWorkgroupMemory=%u%s\n", f->shaderZeroInitializeWorkgroupMemory, nz ? " (turned off)" : "");
			if (nz)
				f->shaderZeroInitializeWorkgroupMemory = VK_FALSE;
		} else if (p->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_IMAGE_ROBUSTNESS_FEATURES) {
			VkPhysicalDeviceImageRobustnessFeatures *f = (VkPhysicalDeviceImageRobustnessFeatures *)p;
			fprintf(stderr, "vkstats: robustImageAccess=%u%s\n", f->robustImageAccess, off ? " (turned off)" : "");
			if (off)
				f->robustImageAccess = VK_FALSE;
		}
	}
}

// layer_CreateDevice adds the extension and its feature to the device's
// create info.
static VkResult VKAPI_CALL layer_CreateDevice(VkPhysicalDevice pd, const VkDeviceCreateInfo *ci, const VkAllocationCallbacks *alloc, VkDevice *dev) {
	VkLayerDeviceCreateInfo *li = (VkLayerDeviceCreateInfo *)ci->pNext;
	while (li && !(li->sType == VK_STRUCTURE_TYPE_LOADER_DEVICE_CREATE_INFO && li->function == VK_LAYER_LINK_INFO))
		li = (VkLayerDeviceCreateInfo *)li->pNext;
	if (!li)
		return VK_ERROR_INITIALIZATION_FAILED;
	PFN_vkGetInstanceProcAddr gipa = li->u.pLayerInfo->pfnNextGetInstanceProcAddr;
	PFN_vkGetDeviceProcAddr gdpa = li->u.pLayerInfo->pfnNextGetDeviceProcAddr;
	li->u.pLayerInfo = li->u.pLayerInfo->pNext;
	PFN_vkCreateDevice create = (PFN_vkCreateDevice)gipa(VK_NULL_HANDLE, "vkCreateDevice");

	VkDeviceCreateInfo c = *ci;
	VkPhysicalDeviceFeatures f10;
	robustness(&c, &f10);
	if (getenv("VKSTATS_LOG")) {
		for (uint32_t i = 0; i < ci->enabledExtensionCount; i++)
			fprintf(stderr, "vkstats: extension %s\n", ci->ppEnabledExtensionNames[i]);
		for (const VkBaseInStructure *p = ci->pNext; p; p = p->pNext)
			fprintf(stderr, "vkstats: feature struct sType %d\n", p->sType);
	}
	const char *ext[256];
	uint32_t n = 0;
	int have = 0;
	for (uint32_t i = 0; i < ci->enabledExtensionCount && n < 255; i++) {
		ext[n++] = ci->ppEnabledExtensionNames[i];
		have |= !strcmp(ci->ppEnabledExtensionNames[i], VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
	}
	if (!have)
		ext[n++] = VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME;
	c.enabledExtensionCount = n;
	c.ppEnabledExtensionNames = ext;
	VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR feat = {
		VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR, (void *)c.pNext, VK_TRUE};
	c.pNext = &feat;
	VkResult r = create(pd, &c, alloc, dev);
	int stats = r == VK_SUCCESS;
	if (!stats) {
		fprintf(stderr, "vkstats: device without %s (%d); no statistics\n", VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME, r);
		c = *ci;
		robustness(&c, &f10);
		if ((r = create(pd, &c, alloc, dev)) != VK_SUCCESS)
			return r;
	}
	for (int i = 0; i < MAXDEV; i++) {
		if (!devs[i].dev) {
			devs[i].dev = *dev;
			devs[i].gdpa = gdpa;
			devs[i].create = (PFN_vkCreateComputePipelines)gdpa(*dev, "vkCreateComputePipelines");
			devs[i].module = (PFN_vkCreateShaderModule)gdpa(*dev, "vkCreateShaderModule");
			if (stats) {
				devs[i].props = (PFN_vkGetPipelineExecutablePropertiesKHR)gdpa(*dev, "vkGetPipelineExecutablePropertiesKHR");
				devs[i].stats = (PFN_vkGetPipelineExecutableStatisticsKHR)gdpa(*dev, "vkGetPipelineExecutableStatisticsKHR");
			}
			break;
		}
	}
	return r;
}

static int find(VkDevice dev) {
	for (int i = 0; i < MAXDEV; i++)
		if (devs[i].dev == dev)
			return i;
	return -1;
}

static void print_stats(int d, VkPipeline p, const char *entry) {
	VkPipelineInfoKHR pi = {VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, 0, p};
	uint32_t ne = 0;
	if (devs[d].props(devs[d].dev, &pi, &ne, 0) != VK_SUCCESS)
		return;
	for (uint32_t e = 0; e < ne; e++) {
		VkPipelineExecutableInfoKHR ei = {VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, 0, p, e};
		VkPipelineExecutableStatisticKHR st[32];
		uint32_t ns = 32;
		for (uint32_t i = 0; i < ns; i++)
			st[i] = (VkPipelineExecutableStatisticKHR){.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR};
		if (devs[d].stats(devs[d].dev, &ei, &ns, st) < 0)
			continue;
		fprintf(stderr, "vkstats: %s:", entry);
		for (uint32_t i = 0; i < ns; i++) {
			switch (st[i].format) {
			case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: fprintf(stderr, " %s=%u", st[i].name, st[i].value.b32); break;
			case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: fprintf(stderr, " %s=%lld", st[i].name, (long long)st[i].value.i64); break;
			case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: fprintf(stderr, " %s=%llu", st[i].name, (unsigned long long)st[i].value.u64); break;
			case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR: fprintf(stderr, " %s=%g", st[i].name, st[i].value.f64); break;
			default: break;
			}
		}
		fprintf(stderr, "\n");
	}
}

// layer_CreateComputePipelines asks for statistics on each pipeline and
// prints them.
static VkResult VKAPI_CALL layer_CreateComputePipelines(VkDevice dev, VkPipelineCache cache, uint32_t n, const VkComputePipelineCreateInfo *ci, const VkAllocationCallbacks *alloc, VkPipeline *out) {
	int d = find(dev);
	if (d < 0)
		return VK_ERROR_INITIALIZATION_FAILED;
	VkComputePipelineCreateInfo *c = malloc(n * sizeof *c);
	for (uint32_t i = 0; i < n; i++) {
		c[i] = ci[i];
		if (devs[d].stats)
			c[i].flags |= VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
	}
	VkResult r = devs[d].create(dev, cache, n, c, alloc, out);
	free(c);
	if (r == VK_SUCCESS && devs[d].props && devs[d].stats)
		for (uint32_t i = 0; i < n; i++)
			print_stats(d, out[i], ci[i].stage.pName);
	return r;
}

// layer_CreateShaderModule writes the module's SPIR-V to
// $VKSTATS_DUMP/module-N.spv where that is set.
static VkResult VKAPI_CALL layer_CreateShaderModule(VkDevice dev, const VkShaderModuleCreateInfo *ci, const VkAllocationCallbacks *alloc, VkShaderModule *out) {
	static int seq;
	int d = find(dev);
	if (d < 0)
		return VK_ERROR_INITIALIZATION_FAILED;
	const char *dir = getenv("VKSTATS_DUMP");
	if (dir) {
		char path[4096];
		snprintf(path, sizeof path, "%s/module-%03d.spv", dir, seq);
		FILE *f = fopen(path, "wb");
		if (f) {
			fwrite(ci->pCode, 1, ci->codeSize, f);
			fclose(f);
			fprintf(stderr, "vkstats: wrote %s\n", path);
		}
	}
	seq++;
	return devs[d].module(dev, ci, alloc, out);
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkGetDeviceProcAddr(VkDevice dev, const char *name);

// device_hook is the layer's version of device-level function name, or NULL.
static PFN_vkVoidFunction device_hook(const char *name) {
	static const struct {
		const char *name;
		PFN_vkVoidFunction f;
	} hooks[] = {
		{"vkGetDeviceProcAddr", (PFN_vkVoidFunction)vkGetDeviceProcAddr},
		{"vkCreateComputePipelines", (PFN_vkVoidFunction)layer_CreateComputePipelines},
		{"vkCreateShaderModule", (PFN_vkVoidFunction)layer_CreateShaderModule},
	};
	for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++)
		if (!strcmp(name, hooks[i].name))
			return hooks[i].f;
	return NULL;
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkGetDeviceProcAddr(VkDevice dev, const char *name) {
	PFN_vkVoidFunction f = device_hook(name);
	if (f)
		return f;
	int d = find(dev);
	return d < 0 ? NULL : devs[d].gdpa(dev, name);
}

EXPORT VKAPI_ATTR PFN_vkVoidFunction VKAPI_CALL vkGetInstanceProcAddr(VkInstance inst, const char *name) {
	if (!strcmp(name, "vkGetInstanceProcAddr"))
		return (PFN_vkVoidFunction)vkGetInstanceProcAddr;
	if (!strcmp(name, "vkCreateInstance"))
		return (PFN_vkVoidFunction)layer_CreateInstance;
	if (!strcmp(name, "vkCreateDevice"))
		return (PFN_vkVoidFunction)layer_CreateDevice;
	PFN_vkVoidFunction f = device_hook(name);
	if (f)
		return f;
	return next_gipa ? next_gipa(inst, name) : NULL;
}
