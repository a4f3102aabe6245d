#include "tune/binary_cache.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "tune/config.hpp"
#include "tune/error.hpp"

namespace tune {
namespace {

// File layout: magic, then three length-prefixed fields (key text, entry name, binary), then
// an FNV-1a 64 checksum over everything before it. Lengths are u64 little-endian (x86-64 and
// aarch64 hosts only write and read these files).
constexpr char kMagic[8] = {'L', 'T', 'B', 'I', 'N', '0', '0', '1'};
constexpr std::uint64_t kMaxField = std::uint64_t{1} << 32;  // 4 GiB: no kernel is that big

void put_u64(std::string& out, std::uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); }

void put_field(std::string& out, const std::string& field) {
    put_u64(out, field.size());
    out += field;
}

// Reads a u64 at pos, advancing it; false when the file is too short.
bool get_u64(const std::string& in, std::size_t& pos, std::uint64_t& v) {
    if (in.size() - pos < sizeof v) return false;
    std::memcpy(&v, in.data() + pos, sizeof v);
    pos += sizeof v;
    return true;
}

bool get_field(const std::string& in, std::size_t& pos, std::string& field) {
    std::uint64_t n = 0;
    if (!get_u64(in, pos, n) || n > kMaxField || n > in.size() - pos) return false;
    field.assign(in.data() + pos, static_cast<std::size_t>(n));
    pos += static_cast<std::size_t>(n);
    return true;
}

std::string hex64(std::uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
}

}  // namespace

std::string CompileRequest::source_hash() const {
    std::string all = source_name + '\n' + source;
    for (const auto& [name, text] : headers) all += '\n' + name + '\n' + text;
    for (const auto& o : options) all += '\n' + o;
    return hex64(fnv1a64(all));
}

std::string BinaryKey::text() const {
    return "source=" + source_hash + " instance=" + instance + " arch=" + arch + " compiler=" + compiler;
}

std::string BinaryKey::digest() const {
    // Two independent 64-bit hashes (text and reversed text): file names do not collide in
    // practice, and a collision is caught anyway by the key stored in the file.
    std::string t = text();
    std::string r(t.rbegin(), t.rend());
    return hex64(fnv1a64(t)) + hex64(fnv1a64(r));
}

BinaryKey binary_key(const CompileRequest& request, const KernelCompiler& compiler) {
    return {request.source_hash(), request.instance, request.arch, compiler.version()};
}

BinaryCache::BinaryCache(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    require(!ec && std::filesystem::is_directory(dir_),
            "kernel cache: cannot create folder '" + dir_.string() + "': " + ec.message());
}

std::filesystem::path BinaryCache::default_dir() {
    if (const char* d = std::getenv("LIBTUNE_KERNEL_CACHE"); d && *d) return d;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::filesystem::path(x) / "libtune" / "kernels";
    if (const char* h = std::getenv("HOME"); h && *h) return std::filesystem::path(h) / ".cache" / "libtune" / "kernels";
    return std::filesystem::temp_directory_path() / "libtune-kernels";
}

std::filesystem::path BinaryCache::path_of(const BinaryKey& key) const { return dir_ / (key.digest() + ".bin"); }

std::optional<CompileResult> BinaryCache::load(const BinaryKey& key) const {
    const auto path = path_of(key);
    std::ifstream f(path, std::ios::binary);
    if (!f) return std::nullopt;
    std::string in((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto reject = [&]() -> std::optional<CompileResult> {
        // A damaged entry is recompiled and rewritten; removing it keeps the folder clean.
        std::error_code ec;
        std::filesystem::remove(path, ec);
        return std::nullopt;
    };
    if (in.size() < sizeof kMagic + 8 || std::memcmp(in.data(), kMagic, sizeof kMagic) != 0) return reject();
    std::size_t pos = sizeof kMagic;
    std::string stored_key, entry, binary;
    if (!get_field(in, pos, stored_key) || !get_field(in, pos, entry) || !get_field(in, pos, binary)) return reject();
    const std::size_t body = pos;
    std::uint64_t sum = 0;
    if (!get_u64(in, pos, sum) || pos != in.size()) return reject();
    if (sum != fnv1a64(std::string_view(in.data(), body))) return reject();
    if (stored_key != key.text() || entry.empty() || binary.empty()) return reject();
    CompileResult r;
    r.ok = true;
    r.binary = std::move(binary);
    r.entry = std::move(entry);
    r.from_cache = true;
    return r;
}

void BinaryCache::store(const BinaryKey& key, const CompileResult& result) const {
    require(result.ok && !result.binary.empty() && !result.entry.empty(),
            "kernel cache: only a successful compile with a binary and an entry name can be stored");
    std::string out(kMagic, sizeof kMagic);
    put_field(out, key.text());
    put_field(out, result.entry);
    put_field(out, result.binary);
    put_u64(out, fnv1a64(out));

    static std::atomic<std::uint64_t> counter{0};
    const auto final_path = path_of(key);
    const auto tmp = dir_ / (key.digest() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++));
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        f.write(out.data(), static_cast<std::streamsize>(out.size()));
        f.flush();
        if (!f) {
            std::error_code ec;
            std::filesystem::remove(tmp, ec);
            throw Error("kernel cache: cannot write '" + tmp.string() + "'");
        }
    }
    std::error_code ec;
    std::filesystem::rename(tmp, final_path, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        throw Error("kernel cache: cannot rename into '" + final_path.string() + "': " + ec.message());
    }
}

}  // namespace tune
