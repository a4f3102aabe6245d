#include "tune/shared_library.hpp"

#include <dlfcn.h>

#include "tune/error.hpp"

namespace tune {

std::shared_ptr<SharedLibrary> SharedLibrary::open(const std::vector<std::string>& names, std::string* why) {
    std::string errors;
    for (const auto& n : names) {
        if (void* h = ::dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL))
            return std::shared_ptr<SharedLibrary>(new SharedLibrary(h, n));  // private constructor
        const char* e = ::dlerror();
        errors += (errors.empty() ? "" : "; ") + std::string(e ? e : n);
    }
    if (why) *why = errors;
    return nullptr;
}

std::shared_ptr<SharedLibrary> SharedLibrary::open(std::initializer_list<const char*> names, std::string* why) {
    return open(std::vector<std::string>(names.begin(), names.end()), why);
}

SharedLibrary::~SharedLibrary() { ::dlclose(handle_); }

void* SharedLibrary::symbol(const char* name) const {
    void* p = find(name);
    require(p != nullptr, name_ + ": symbol '" + std::string(name) + "' not found (library too old?)");
    return p;
}

void* SharedLibrary::find(const char* name) const noexcept {
    ::dlerror();
    return ::dlsym(handle_, name);
}

}  // namespace tune
