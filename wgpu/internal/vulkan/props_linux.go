//go:build linux && cgo && (amd64 || arm64)

package vulkan

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

// The few Vulkan 1.0 declarations needed to list the physical devices'
// properties. The loader is opened at run time, so that neither Vulkan
// headers nor a link-time library are needed.
typedef struct {
	uint32_t sType; // VK_STRUCTURE_TYPE_APPLICATION_INFO: 0
	const void *pNext;
	const char *pApplicationName;
	uint32_t applicationVersion;
	const char *pEngineName;
	uint32_t engineVersion;
	uint32_t apiVersion;
} ca_vk_app_info;

typedef struct {
	uint32_t sType; // VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO: 1
	const void *pNext;
	uint32_t flags;
	const ca_vk_app_info *pApplicationInfo;
	uint32_t enabledLayerCount;
	const char *const *ppEnabledLayerNames;
	uint32_t enabledExtensionCount;
	const char *const *ppEnabledExtensionNames;
} ca_vk_instance_info;

typedef void (*ca_vk_fn)(void);
typedef ca_vk_fn (*ca_vk_get_proc)(void *instance, const char *name);
typedef int32_t (*ca_vk_create_instance)(const ca_vk_instance_info *info, const void *alloc, void **instance);
typedef void (*ca_vk_destroy_instance)(void *instance, const void *alloc);
typedef int32_t (*ca_vk_enumerate)(void *instance, uint32_t *count, void **devices);
typedef void (*ca_vk_properties)(void *device, void *properties);

// ca_vk_device_properties writes the VkPhysicalDeviceProperties of up to max
// physical devices, size bytes each, to out and returns how many it wrote,
// or -1 where the loader or an instance is not available.
static int ca_vk_device_properties(unsigned char *out, size_t size, int max) {
	void *lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
	if (lib == NULL) {
		return -1;
	}
	int n = -1;
	ca_vk_get_proc get = (ca_vk_get_proc)dlsym(lib, "vkGetInstanceProcAddr");
	ca_vk_create_instance create = get ? (ca_vk_create_instance)get(NULL, "vkCreateInstance") : NULL;
	ca_vk_app_info app = {0, NULL, "coreattn", 0, NULL, 0, 1u << 22}; // Vulkan 1.0
	ca_vk_instance_info info = {1, NULL, 0, &app, 0, NULL, 0, NULL};
	void *instance = NULL;
	if (create != NULL && create(&info, NULL, &instance) == 0) {
		ca_vk_destroy_instance destroy = (ca_vk_destroy_instance)get(instance, "vkDestroyInstance");
		ca_vk_enumerate enumerate = (ca_vk_enumerate)get(instance, "vkEnumeratePhysicalDevices");
		ca_vk_properties properties = (ca_vk_properties)get(instance, "vkGetPhysicalDeviceProperties");
		void *devices[16];
		uint32_t count = max < 16 ? (uint32_t)max : 16;
		int32_t r = enumerate != NULL ? enumerate(instance, &count, devices) : -1;
		if (properties != NULL && (r == 0 || r == 5)) { // VK_SUCCESS, VK_INCOMPLETE
			for (uint32_t i = 0; i < count; i++) {
				properties(devices[i], out + i * size);
			}
			n = (int)count;
		}
		if (destroy != NULL) {
			destroy(instance, NULL);
		}
	}
	dlclose(lib);
	return n;
}
*/
import "C"

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/coreattn/coreattn/wgpu/internal/quiet"
)

// The layout of VkPhysicalDeviceProperties on 64-bit platforms (the Vulkan
// ABI, unchanged since 1.0): the offsets of the fields read here.
const (
	vkPropsSize             = 824
	vkPropsVendorID         = 8
	vkPropsDeviceID         = 12
	vkPropsDeviceName       = 20  // char[256]
	vkPropsSharedMemorySize = 512 // limits.maxComputeSharedMemorySize
	vkPropsInvocations      = 528 // limits.maxComputeWorkGroupInvocations
	vkPropsTimestampPeriod  = 720 // limits.timestampPeriod
)

// Devices lists the Vulkan physical devices, or nil where the Vulkan
// loader cannot be opened or gives no instance. It creates and destroys an
// instance of its own, beside the runtime's.
func Devices() []Device {
	const max = 16
	buf := C.malloc(C.size_t(vkPropsSize * max))
	defer C.free(buf)
	var n C.int
	quiet.Stderr(true, func() { n = C.ca_vk_device_properties((*C.uchar)(buf), vkPropsSize, max) })
	if n <= 0 {
		return nil
	}
	raw := unsafe.Slice((*byte)(buf), vkPropsSize*int(n))
	out := make([]Device, n)
	le := binary.LittleEndian
	for i := range out {
		p := raw[i*vkPropsSize : (i+1)*vkPropsSize]
		name := p[vkPropsDeviceName : vkPropsDeviceName+256]
		for j, c := range name {
			if c == 0 {
				name = name[:j]
				break
			}
		}
		out[i] = Device{
			VendorID:          le.Uint32(p[vkPropsVendorID:]),
			DeviceID:          le.Uint32(p[vkPropsDeviceID:]),
			Name:              string(name),
			SharedMemory:      le.Uint32(p[vkPropsSharedMemorySize:]),
			Invocations:       le.Uint32(p[vkPropsInvocations:]),
			TimestampPeriodNs: float64(math.Float32frombits(le.Uint32(p[vkPropsTimestampPeriod:]))),
		}
	}
	return out
}
