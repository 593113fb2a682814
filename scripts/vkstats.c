// vkstats compiles SPIR-V compute shaders on a Vulkan device (the first
// discrete GPU, else the first device) and prints what the driver says of
// each pipeline through VK_KHR_pipeline_executable_properties: on NVIDIA,
// registers per invocation, binary size and shared memory. With VKSTATS_IR
// set it also writes the driver's internal representations, where it offers
// any, beside each input (NVIDIA offers none).
//
// Its pipelines are not wgpu's, but from the SPIR-V wgpu passes (dumped by
// scripts/vkstats_layer.c, which reports wgpu's pipelines themselves) it
// gets the same registers on the H200 (docs/perf-history.md, What the
// driver showed). VKSTATS_ZERO=1 and VKSTATS_ROBUST=1 enable two of the device
// features wgpu enables (zero-initialised workgroup memory; robustness);
// neither changed a register count there.
//
//	usage: vkstats file.spv entry [file.spv entry ...]
//
// Build (headers from Debian's libvulkan-dev; see docs/device.md for the whole
// loop: scripts/wgsl.go, naga, vkstats on the device):
//
//	gcc -O1 -o .dev/vkstats scripts/vkstats.c -lvulkan
//
// The pipeline layout declares bindings 0 (uniform) and 1..11 (storage) of
// group 0, which covers coreattn's kernels.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

#define CK(x) do { VkResult r_ = (x); if (r_ != VK_SUCCESS) { fprintf(stderr, "%s: %d\n", #x, r_); exit(1); } } while (0)

static void *readfile(const char *p, size_t *n) {
	FILE *f = fopen(p, "rb");
	if (!f) { perror(p); exit(1); }
	fseek(f, 0, SEEK_END); *n = ftell(f); fseek(f, 0, SEEK_SET);
	void *b = malloc(*n); fread(b, 1, *n, f); fclose(f); return b;
}

int main(int argc, char **argv) {
	VkApplicationInfo app = {VK_STRUCTURE_TYPE_APPLICATION_INFO, 0, "vkstats", 1, 0, 0, VK_API_VERSION_1_2};
	VkInstanceCreateInfo ici = {VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, 0, 0, &app};
	VkInstance inst; CK(vkCreateInstance(&ici, 0, &inst));
	uint32_t n = 8; VkPhysicalDevice pds[8]; CK(vkEnumeratePhysicalDevices(inst, &n, pds));
	VkPhysicalDevice pd = pds[0];
	for (uint32_t i = 0; i < n; i++) {
		VkPhysicalDeviceProperties p; vkGetPhysicalDeviceProperties(pds[i], &p);
		printf("device %u: %s\n", i, p.deviceName);
		if (p.deviceType == VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU) pd = pds[i];
	}
	float prio = 1;
	VkDeviceQueueCreateInfo qci = {VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, 0, 0, 0, 1, &prio};
	VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR pef = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR, 0, VK_TRUE};
	const char *ext[4] = {"VK_KHR_pipeline_executable_properties"};
	uint32_t next = 1;
	void *chain = &pef;
	// What wgpu enables that may change the code (see vkstats_layer.c):
	// VKSTATS_ZERO=1 the zero-initialised workgroup memory that WGSL
	// requires (wgpu then has naga emit initialisers instead of a
	// clearing loop), VKSTATS_ROBUST=1 the robustness features.
	VkPhysicalDeviceZeroInitializeWorkgroupMemoryFeaturesKHR zf = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ZERO_INITIALIZE_WORKGROUP_MEMORY_FEATURES_KHR, 0, VK_TRUE};
	if (getenv("VKSTATS_ZERO")) {
		ext[next++] = "VK_KHR_zero_initialize_workgroup_memory";
		zf.pNext = chain;
		chain = &zf;
	}
	VkPhysicalDeviceRobustness2FeaturesEXT rf = {VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ROBUSTNESS_2_FEATURES_EXT, 0, VK_TRUE, VK_TRUE, VK_FALSE};
	VkPhysicalDeviceFeatures f10 = {0};
	if (getenv("VKSTATS_ROBUST")) {
		ext[next++] = "VK_EXT_robustness2";
		rf.pNext = chain;
		chain = &rf;
		f10.robustBufferAccess = VK_TRUE;
	}
	VkDeviceCreateInfo dci = {VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, chain, 0, 1, &qci, 0, 0, next, ext, &f10};
	VkDevice dev; CK(vkCreateDevice(pd, &dci, 0, &dev));
	PFN_vkGetPipelineExecutablePropertiesKHR getProps = (void *)vkGetDeviceProcAddr(dev, "vkGetPipelineExecutablePropertiesKHR");
	PFN_vkGetPipelineExecutableStatisticsKHR getStats = (void *)vkGetDeviceProcAddr(dev, "vkGetPipelineExecutableStatisticsKHR");
	for (int a = 1; a + 1 < argc; a += 2) {
		size_t sz; void *code = readfile(argv[a], &sz);
		VkShaderModuleCreateInfo smci = {VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, 0, 0, sz, code};
		VkShaderModule sm; CK(vkCreateShaderModule(dev, &smci, 0, &sm));
		VkDescriptorSetLayoutBinding b[12]; // group 0: binding 0 uniform, the rest storage
		for (int i = 0; i < 12; i++) {
			b[i] = (VkDescriptorSetLayoutBinding){i, i == 0 ? VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_COMPUTE_BIT, 0};
		}
		VkDescriptorSetLayoutCreateInfo dl = {VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, 0, 0, 12, b};
		VkDescriptorSetLayout dsl; CK(vkCreateDescriptorSetLayout(dev, &dl, 0, &dsl));
		VkPipelineLayoutCreateInfo plci = {VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, 0, 0, 1, &dsl};
		VkPipelineLayout pl; CK(vkCreatePipelineLayout(dev, &plci, 0, &pl));
		VkComputePipelineCreateInfo cpci = {VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO, 0,
			VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR | VK_PIPELINE_CREATE_CAPTURE_INTERNAL_REPRESENTATIONS_BIT_KHR,
			{VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, 0, 0, VK_SHADER_STAGE_COMPUTE_BIT, sm, argv[a + 1], 0}, pl, 0, 0};
		VkPipeline pipe; CK(vkCreateComputePipelines(dev, 0, 1, &cpci, 0, &pipe));
		VkPipelineInfoKHR pi = {VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, 0, pipe};
		uint32_t ne = 0; CK(getProps(dev, &pi, &ne, 0));
		VkPipelineExecutablePropertiesKHR props[8];
		for (uint32_t i = 0; i < 8; i++) props[i] = (VkPipelineExecutablePropertiesKHR){VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR};
		if (ne > 8) ne = 8;
		CK(getProps(dev, &pi, &ne, props));
		for (uint32_t e = 0; e < ne; e++) {
			printf("== %s %s: %s (%s)\n", argv[a], argv[a + 1], props[e].name, props[e].description);
			VkPipelineExecutableInfoKHR ei = {VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR, 0, pipe, e};
			uint32_t ns = 0; CK(getStats(dev, &ei, &ns, 0));
			VkPipelineExecutableStatisticKHR *st = calloc(ns, sizeof *st);
			for (uint32_t i = 0; i < ns; i++) st[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR;
			CK(getStats(dev, &ei, &ns, st));
			for (uint32_t i = 0; i < ns; i++) {
				printf("  %-32s ", st[i].name);
				switch (st[i].format) {
				case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR: printf("%u", st[i].value.b32); break;
				case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR: printf("%lld", (long long)st[i].value.i64); break;
				case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR: printf("%llu", (unsigned long long)st[i].value.u64); break;
				case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR: printf("%g", st[i].value.f64); break;
				default: break;
				}
				printf("   (%s)\n", st[i].description);
			}
			free(st);
			if (getenv("VKSTATS_IR")) {
				PFN_vkGetPipelineExecutableInternalRepresentationsKHR getIR = (void *)vkGetDeviceProcAddr(dev, "vkGetPipelineExecutableInternalRepresentationsKHR");
				uint32_t nr = 0; CK(getIR(dev, &ei, &nr, 0));
				VkPipelineExecutableInternalRepresentationKHR *ir = calloc(nr, sizeof *ir);
				for (uint32_t i = 0; i < nr; i++) ir[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INTERNAL_REPRESENTATION_KHR;
				CK(getIR(dev, &ei, &nr, ir));
				for (uint32_t i = 0; i < nr; i++) { ir[i].pData = calloc(1, ir[i].dataSize + 1); }
				getIR(dev, &ei, &nr, ir);
				for (uint32_t i = 0; i < nr; i++) {
					printf("-- IR %s (%s) text=%u size=%zu\n", ir[i].name, ir[i].description, ir[i].isText, ir[i].dataSize);
					char fn[256]; snprintf(fn, sizeof fn, "%s.ir%u.%s", argv[a], i, ir[i].isText ? "txt" : "bin");
					FILE *f = fopen(fn, "wb"); fwrite(ir[i].pData, 1, ir[i].dataSize, f); fclose(f);
				}
			}
		}
		vkDestroyPipeline(dev, pipe, 0);
		free(code);
	}
	return 0;
}
