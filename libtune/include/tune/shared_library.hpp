// SharedLibrary: a library opened with dlopen at run time. The GPU backends load their
// drivers and compilers this way, so a libtune built with them starts on machines without.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace tune {

class SharedLibrary {
public:
    // The first of `names` that loads, or nullptr with the loader's messages in *why.
    static std::shared_ptr<SharedLibrary> open(std::initializer_list<const char*> names, std::string* why);
    static std::shared_ptr<SharedLibrary> open(const std::vector<std::string>& names, std::string* why);
    ~SharedLibrary();
    SharedLibrary(const SharedLibrary&) = delete;
    SharedLibrary& operator=(const SharedLibrary&) = delete;
    // Throws tune::Error naming the library and the symbol when absent.
    void* symbol(const char* name) const;
    // nullptr when absent: for symbols that tell one release of a library from another.
    void* find(const char* name) const noexcept;
    const std::string& name() const { return name_; }

private:
    SharedLibrary(void* handle, std::string name) : handle_(handle), name_(std::move(name)) {}
    void* handle_;
    std::string name_;
};

// A function table loaded from a library: Api has a `lib` member and function pointers that
// fill(api) sets (throwing tune::Error for a missing symbol).
template <class Api>
struct LoadedApi {
    std::unique_ptr<Api> api;
    std::string why;  // when api is null
};

template <class Api, class Fill>
LoadedApi<Api> load_api(std::initializer_list<const char*> names, Fill fill) {
    LoadedApi<Api> s;
    auto lib = SharedLibrary::open(names, &s.why);
    if (!lib) return s;
    try {
        auto api = std::make_unique<Api>();
        api->lib = std::move(lib);
        fill(*api);
        s.api = std::move(api);
    } catch (const std::exception& e) {
        s.why = e.what();
    }
    return s;
}

// Two-step stringizing expands a header's macros: cuMemAlloc -> "cuMemAlloc_v2".
#define LIBTUNE_STR2(x) #x
#define LIBTUNE_STR(x) LIBTUNE_STR2(x)
// Declares a table member with the header's prototype, and loads it (inside fill).
#define LIBTUNE_API_POINTER(name) decltype(&::name) name = nullptr;
#define LIBTUNE_API_LOAD(name) api.name = reinterpret_cast<decltype(api.name)>(api.lib->symbol(LIBTUNE_STR(name)));

}  // namespace tune
