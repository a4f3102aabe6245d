#include "hip_clang_compiler.hpp"

#include <cxxabi.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "tune/error.hpp"

namespace tune {
namespace {

// The device libraries clang 19 links for HIP on gfx90a against ROCm 5.2's (clang -### lists
// them), then oclc_isa_version_<arch>.bc. ROCm 5.2 has none for gfx942, so clang runs with
// -nogpulib and links these itself, making the ISA version library when it is missing.
constexpr std::array kDeviceLibraries = {"hip.bc",
                                         "ocml.bc",
                                         "ockl.bc",
                                         "oclc_daz_opt_off.bc",
                                         "oclc_unsafe_math_off.bc",
                                         "oclc_finite_only_off.bc",
                                         "oclc_correctly_rounded_sqrt_on.bc",
                                         "oclc_wavefrontsize64_on.bc",
                                         "oclc_abi_version_400.bc"};

// What ROCm's oclc_isa_version_<n>.bc holds for `arch` ("gfx942"): __oclc_ISA_version = major *
// 1000 + minor * 100 + stepping (9402), the last two digits of the name being hexadecimal.
std::string isa_version_ir(const std::string& arch) {
    const std::string digits = arch.substr(3);
    require(arch.rfind("gfx", 0) == 0 && digits.size() >= 3, "HIP arch '" + arch + "': expected gfx<digits>");
    const int version = std::stoi(digits.substr(0, digits.size() - 2)) * 1000 +
                        std::stoi(digits.substr(digits.size() - 2, 1), nullptr, 16) * 100 +
                        std::stoi(digits.substr(digits.size() - 1), nullptr, 16);
    return "target triple = \"amdgcn-amd-amdhsa\"\n@__oclc_ISA_version = linkonce_odr protected local_unnamed_addr "
           "addrspace(4) constant i32 " + std::to_string(version) + ", align 4\n";
}

std::string quoted(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Runs `command` in a shell; its exit status, stdout and stderr.
std::pair<int, std::string> run(const std::string& command) {
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>&1").c_str(), "r"), pclose);
    if (!pipe) throw Error("cannot run: " + command);
    std::string out;
    std::array<char, 4096> buf{};
    for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), pipe.get())) > 0;) out.append(buf.data(), n);
    const int status = pclose(pipe.release());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const std::filesystem::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary);
    out << text;
    if (!out) throw Error("cannot write " + p.string());
}

std::string without_spaces(std::string s) {
    std::erase(s, ' ');
    return s;
}

// The kernel of `assembly` whose demangled name is `instance` ("libtune::k<1,2>"), or "".
std::string find_kernel(const std::string& assembly, const std::string& instance) {
    const std::string wanted = without_spaces(instance) + "(", marker = ".amdhsa_kernel ";
    for (std::size_t at = assembly.find(marker); at != std::string::npos; at = assembly.find(marker, at + 1)) {
        const std::size_t begin = at + marker.size(), end = assembly.find('\n', begin);
        const std::string name = assembly.substr(begin, end - begin);
        int status = 0;
        std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(name.c_str(), nullptr, nullptr, &status),
                                                         free);
        if (status == 0 && without_spaces(demangled.get()).find(wanted) != std::string::npos) return name;
    }
    return "";
}

// Symbols the assembly references through a relocation (sym@rel32, sym@gotpcrel32, sym@abs32)
// but does not define as a label.
std::set<std::string> undefined_symbols(const std::string& assembly) {
    auto ident = [](char c) { return std::isalnum((unsigned char)c) || c == '_' || c == '.' || c == '$'; };
    std::set<std::string> defined, used;
    std::istringstream lines(assembly);
    for (std::string line; std::getline(lines, line);) {
        std::size_t n = 0;
        while (n < line.size() && ident(line[n])) ++n;
        if (n > 0 && n < line.size() && line[n] == ':') defined.insert(line.substr(0, n));
        for (std::size_t at = line.find('@'); at != std::string::npos; at = line.find('@', at + 1)) {
            const std::string kind = line.substr(at + 1, 5);
            if (kind != "rel32" && kind != "gotpc" && kind != "abs32") continue;
            std::size_t b = at;
            while (b > 0 && ident(line[b - 1])) --b;
            if (b < at) used.insert(line.substr(b, at - b));
        }
    }
    std::set<std::string> out;
    for (const auto& s : used)
        if (!defined.count(s)) out.insert(s);
    return out;
}

// A fresh folder under the system's temporary directory, removed with this object.
struct TemporaryFolder {
    std::filesystem::path path;
    TemporaryFolder() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "libtune-hip-clang-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw Error("mkdtemp " + tmpl + " failed");
        path = tmpl;
    }
    ~TemporaryFolder() {
        std::error_code ignored;  // a leftover temporary folder is not worth failing a compile
        std::filesystem::remove_all(path, ignored);
    }
};

}  // namespace

HipClangCompiler::HipClangCompiler(HipClangSetup setup) : setup_(std::move(setup)) {
    require(std::filesystem::exists(setup_.clang), "clang not found: " + setup_.clang.string());
    require(std::filesystem::exists(setup_.hip_include / "hip" / "hip_runtime.h"),
            "hip/hip_runtime.h not found under " + setup_.hip_include.string());
    for (const char* lib : kDeviceLibraries)
        require(std::filesystem::exists(setup_.bitcode / lib), std::string(lib) + " not found in " + setup_.bitcode.string());
    const auto [status, out] = run(quoted(setup_.clang) + " --version");
    require(status == 0, "clang --version failed: " + out);
    version_ = out.substr(0, out.find('\n'));
}

CompileResult HipClangCompiler::compile(const CompileRequest& req) const {
    CompileResult result;
    TemporaryFolder dir;
    for (const auto& [name, text] : req.headers) write_file(dir.path / name, text);
    write_file(dir.path / req.source_name, req.source);
    // Taking the kernel's address instantiates it, as hiprtcAddNameExpression does.
    write_file(dir.path / "instance.hip", "#include \"" + req.source_name +
                                              "\"\n[[maybe_unused]] static const auto libtune_instance = &" +
                                              req.instance + ";\n");
    std::filesystem::path isa = setup_.bitcode / ("oclc_isa_version_" + req.arch.substr(3) + ".bc");
    if (!std::filesystem::exists(isa)) {
        isa = dir.path / "oclc_isa_version.bc";
        write_file(dir.path / "oclc_isa_version.ll", isa_version_ir(req.arch));
        const auto [status, log] = run(quoted(setup_.clang) + " -x ir -target amdgcn-amd-amdhsa -nogpulib -emit-llvm -c " +
                                       quoted((dir.path / "oclc_isa_version.ll").string()) + " -o " + quoted(isa.string()));
        if (status != 0) {
            result.log = "making oclc_isa_version.bc for " + req.arch + " failed:\n" + log;
            return result;
        }
    }
    std::string cmd = quoted(setup_.clang);
    auto arg = [&cmd](const std::string& a) { cmd.append(1, ' ').append(a); };
    for (const char* a : {"-x", "hip", "--cuda-device-only", "-nogpulib", "-O3", "-std=c++17"}) arg(a);
    arg("--offload-arch=" + req.arch);
    arg("-idirafter");
    arg(quoted(setup_.hip_include.string()));
    // hiprtc puts ROCm's device-side runtime in front of every program: clang's HIP wrapper and
    // hip/hip_runtime.h here (clang adds both itself unless -nogpulib).
    for (const char* a : {"-include", "__clang_hip_runtime_wrapper.h", "-include", "hip/hip_runtime.h"}) arg(a);
    auto link = [&arg](const std::filesystem::path& library) {
        for (const char* a : {"-Xclang", "-mlink-builtin-bitcode", "-Xclang"}) arg(a);
        arg(quoted(library.string()));
    };
    for (const char* lib : kDeviceLibraries) link(setup_.bitcode / lib);
    link(isa);
    for (const auto& o : req.options) arg(quoted(o));
    const auto out = dir.path / "instance.s";
    arg("-S");
    arg(quoted((dir.path / "instance.hip").string()));
    arg("-o");
    arg(quoted(out.string()));
    const auto [status, log] = run(cmd);
    result.log = log;
    if (status != 0) {
        result.log = "clang exited with " + std::to_string(status) + " for " + req.instance + " (" + req.arch + "):\n" +
                     cmd + "\n" + log;
        return result;
    }
    result.binary = read_file(out);
    result.entry = find_kernel(result.binary, req.instance);
    if (result.entry.empty()) {
        result.log = "no kernel named " + req.instance + " in the assembly\n" + log;
        return result;
    }
    if (const auto missing = undefined_symbols(result.binary); !missing.empty()) {
        result.log = "undefined symbols in " + req.instance + " (" + req.arch + "):";
        for (const auto& s : missing) result.log += " " + s;
        result.log += "\n" + log;
        return result;
    }
    result.ok = true;
    return result;
}

}  // namespace tune
