#include "common.hpp"

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

namespace tune::cpu_attention {

bool supports_problem(const Problem& p, const DeviceInfo& device, bool backward, bool bf16_io) {
    if (p.op != OpKind::attention || !device.isa.avx512f) return false;
    if (!(p.dtype == DType::f32 || (bf16_io && p.dtype == DType::bf16))) return false;
    const AttentionDims a = attention_dims(p);
    if (a.backward != backward) return false;
    constexpr std::int64_t kMax = std::numeric_limits<int>::max() / 16;
    return a.q_len <= kMax && a.kv_len <= kMax && a.head_dim <= kMax;
}

std::size_t paged_gather_bytes(const AttentionDims& a, std::size_t element_bytes) {
    return a.page > 0 ? 2 * std::size_t(a.batch * a.kv_heads * a.kv_len * a.head_dim) * element_bytes : 0;
}

namespace {

// K and V rows out of their pages into contiguous [batch][kv_heads][kv_len][head_dim] arrays.
template <class E>
void gather_rows(const AttentionDims& a, const std::int32_t* table, std::int64_t pool_pages, const E* k_pool,
                 const E* v_pool, E* k, E* v) {
    const std::int64_t d = a.head_dim, pages = a.pages_per_sequence();
    check_block_table(a, table, pool_pages);
    for (std::int64_t b = 0; b < a.batch; ++b)
        for (std::int64_t i = 0; i < pages; ++i) {
            const std::int64_t page = table[b * pages + i];
            const std::int64_t keys = std::min(a.page, a.kv_len - i * a.page);
            for (std::int64_t h = 0; h < a.kv_heads; ++h)
                for (std::int64_t j = 0; j < keys; ++j) {
                    const std::size_t from = std::size_t(a.page_row(page, j, h) * d);
                    const std::size_t to = std::size_t(((b * a.kv_heads + h) * a.kv_len + i * a.page + j) * d);
                    std::copy(k_pool + from, k_pool + from + d, k + to);
                    std::copy(v_pool + from, v_pool + from + d, v + to);
                }
        }
}

}  // namespace

void check_block_table(const AttentionDims& a, const std::int32_t* table, std::int64_t pool_pages) {
    const std::int64_t entries = a.batch * a.pages_per_sequence();
    for (std::int64_t i = 0; i < entries; ++i)
        if (table[i] < 0 || table[i] >= pool_pages)
            throw InvalidArgument("paged KV cache: block table entry " + std::to_string(i) + " is " + std::to_string(table[i]) +
                        ", outside the pool's " + std::to_string(pool_pages) + " pages");
}

void gather_paged(const AttentionDims& a, Operands& x, void* into) {
    if (a.page == 0) return;
    const std::size_t n = std::size_t(a.batch * a.kv_heads * a.kv_len * a.head_dim);
    if (x.bf16()) {
        auto* k = static_cast<std::uint16_t*>(into);
        gather_rows(a, x.table, x.pool_pages, x.k16, x.v16, k, k + n);
        x.k16 = k;
        x.v16 = k + n;
    } else {
        auto* k = static_cast<float*>(into);
        gather_rows(a, x.table, x.pool_pages, x.k, x.v, k, k + n);
        x.k = k;
        x.v = k + n;
    }
}

Knob threads_knob(int cores, std::string help) {
    std::vector<std::int64_t> threads;
    for (int t = 1; t <= cores; ++t) threads.push_back(t);
    return Knob::ints("threads", threads, cores, std::move(help));
}

}  // namespace tune::cpu_attention
