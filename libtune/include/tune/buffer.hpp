// AlignedBuffer: an owning, 64-byte-aligned host allocation for operands, packing panels
// and workspaces (cache-line and AVX-512 aligned).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace tune {

inline constexpr std::size_t kBufferAlignment = 64;

class AlignedBuffer {
public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(std::size_t bytes) : bytes_(bytes) {
        if (bytes == 0) return;
        std::size_t rounded = (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
        void* p = std::aligned_alloc(kBufferAlignment, rounded);
        if (!p) throw std::bad_alloc();
        data_.reset(static_cast<std::byte*>(p));
    }
    std::byte* data() { return data_.get(); }
    const std::byte* data() const { return data_.get(); }
    template <class T> T* as() { return reinterpret_cast<T*>(data_.get()); }
    template <class T> const T* as() const { return reinterpret_cast<const T*>(data_.get()); }
    std::size_t bytes() const { return bytes_; }

private:
    struct Free {
        void operator()(std::byte* p) const { std::free(p); }
    };
    std::unique_ptr<std::byte, Free> data_;
    std::size_t bytes_ = 0;
};

}  // namespace tune
