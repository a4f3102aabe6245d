#include "tune/cuda/driver.hpp"

#include "tune/error.hpp"

namespace tune::cuda {

Context::Context(int ordinal) {
    const DriverApi& d = driver();
    check(d.cuDeviceGet(&device_, ordinal), "cuDeviceGet");
    check(d.cuDevicePrimaryCtxRetain(&ctx_, device_), "cuDevicePrimaryCtxRetain");
    make_current();
}

Context::~Context() {
    if (ctx_) driver().cuDevicePrimaryCtxRelease(device_);
}

void Context::make_current() const { check(driver().cuCtxSetCurrent(ctx_), "cuCtxSetCurrent"); }
void Context::synchronize() const { check(driver().cuCtxSynchronize(), "cuCtxSynchronize"); }

DeviceMemory::DeviceMemory(std::size_t bytes) : bytes_(bytes) {
    if (bytes) check(driver().cuMemAlloc(&ptr_, bytes), "cuMemAlloc");
}

DeviceMemory::~DeviceMemory() {
    if (ptr_) driver().cuMemFree(ptr_);
}

DeviceMemory& DeviceMemory::operator=(DeviceMemory&& o) noexcept {
    if (this != &o) {
        if (ptr_) driver().cuMemFree(ptr_);
        ptr_ = o.ptr_, bytes_ = o.bytes_;
        o.ptr_ = 0, o.bytes_ = 0;
    }
    return *this;
}

void DeviceMemory::upload(const void* host, std::size_t bytes) {
    require(bytes <= bytes_, "DeviceMemory::upload: " + std::to_string(bytes) + " bytes into " +
                                 std::to_string(bytes_));
    if (bytes) check(driver().cuMemcpyHtoD(ptr_, host, bytes), "cuMemcpyHtoD");
}

void DeviceMemory::download(void* host, std::size_t bytes) const {
    require(bytes <= bytes_, "DeviceMemory::download: " + std::to_string(bytes) + " bytes from " +
                                 std::to_string(bytes_));
    if (bytes) check(driver().cuMemcpyDtoH(host, ptr_, bytes), "cuMemcpyDtoH");
}

Stream::Stream() { check(driver().cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING), "cuStreamCreate"); }
Stream::~Stream() {
    if (stream_) driver().cuStreamDestroy(stream_);
}
void Stream::synchronize() const { check(driver().cuStreamSynchronize(stream_), "cuStreamSynchronize"); }

Event::Event() { check(driver().cuEventCreate(&event_, CU_EVENT_DEFAULT), "cuEventCreate"); }
Event::~Event() {
    if (event_) driver().cuEventDestroy(event_);
}
void Event::record(CUstream stream) const { check(driver().cuEventRecord(event_, stream), "cuEventRecord"); }
double Event::seconds_since(const Event& start) const {
    check(driver().cuEventSynchronize(event_), "cuEventSynchronize");
    float ms = 0;
    check(driver().cuEventElapsedTime(&ms, start.event_, event_), "cuEventElapsedTime");
    return double(ms) * 1e-3;
}

Module::Module(const std::string& binary) {
    check(driver().cuModuleLoadData(&module_, binary.data()), "cuModuleLoadData");
}
Module::~Module() {
    if (module_) driver().cuModuleUnload(module_);
}
CUfunction Module::function(const std::string& entry) const {
    CUfunction f = nullptr;
    check(driver().cuModuleGetFunction(&f, module_, entry.c_str()), ("cuModuleGetFunction " + entry).c_str());
    return f;
}

CUfunction Module::function(const std::string& entry, unsigned dynamic_shared_bytes) const {
    CUfunction f = function(entry);
    if (dynamic_shared_bytes > 48 * 1024)
        check(driver().cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, int(dynamic_shared_bytes)),
              "cuFuncSetAttribute(max dynamic shared memory)");
    return f;
}

std::int64_t max_shared_bytes(const std::string& arch) {
    // Opt-in maximum per block (CUDA programming guide, compute capability table).
    if (arch.rfind("sm_90", 0) == 0 || arch.rfind("sm_100", 0) == 0) return 227 * 1024;
    if (arch == "sm_80" || arch == "sm_87") return 163 * 1024;
    if (arch == "sm_86" || arch == "sm_89") return 99 * 1024;
    throw Error("CUDA arch '" + arch + "': unknown shared-memory limit (supported: sm_80, sm_86, sm_87, sm_89, sm_90a)");
}

CUtensorMap tensor_map_2d(const void* base, std::uint64_t inner, std::uint64_t rows, std::uint32_t box_rows, bool f16) {
    CUtensorMap map;
    const cuuint64_t dims[2] = {inner, rows};
    const cuuint64_t strides[1] = {inner * 2};
    const cuuint32_t box[2] = {64, box_rows};
    const cuuint32_t element_strides[2] = {1, 1};
    check(driver().cuTensorMapEncodeTiled(&map, f16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2,
                                          const_cast<void*>(base), dims, strides, box, element_strides,
                                          CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                          CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
          "cuTensorMapEncodeTiled");
    return map;
}

DeviceInfo detect_device(int ordinal) {
    const DriverApi& d = driver();
    CUdevice dev = 0;
    check(d.cuDeviceGet(&dev, ordinal), "cuDeviceGet");
    auto attr = [&](CUdevice_attribute a) {
        int v = 0;
        check(d.cuDeviceGetAttribute(&v, a, dev), "cuDeviceGetAttribute");
        return v;
    };
    DeviceInfo info;
    info.backend = Backend::cuda;
    char name[256] = {};
    check(d.cuDeviceGetName(name, sizeof name, dev), "cuDeviceGetName");
    info.model = name;
    const int major = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    const int minor = attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    info.arch = "sm_" + std::to_string(major) + std::to_string(minor) + (major == 9 ? "a" : "");
    info.cores = attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    info.l2_bytes = attr(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
    std::size_t total = 0;
    check(d.cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem");
    info.memory_bytes = static_cast<std::int64_t>(total);
    int driver_version = 0;
    check(d.cuDriverGetVersion(&driver_version), "cuDriverGetVersion");
    info.versions["cuda_driver"] = std::to_string(driver_version / 1000) + "." + std::to_string(driver_version % 1000 / 10);
    info.versions["sm_clock_mhz"] = std::to_string(attr(CU_DEVICE_ATTRIBUTE_CLOCK_RATE) / 1000);
    info.versions["memory_clock_mhz"] = std::to_string(attr(CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE) / 1000);
    info.versions["smem_per_block_optin"] = std::to_string(attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN));
    info.versions["libtune"] = LIBTUNE_VERSION;
    if (const NvrtcApi* n = nvrtc_api()) {
        int a = 0, b = 0;
        n->nvrtcVersion(&a, &b);
        info.versions["nvrtc"] = std::to_string(a) + "." + std::to_string(b);
    }
    return info;
}

}  // namespace tune::cuda
