// AttentionParams: the one kernel argument of libtune's GPU attention kernels, and the block
// geometry (row mapping, masks, key tiles, split-KV ranges) both the kernels and the host code
// compute. Shared verbatim by the host (C++20), NVRTC and hiprtc (C++17): plain types only.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define LIBTUNE_HD __host__ __device__ inline
#else
#define LIBTUNE_HD inline
#endif

namespace libtune {

struct AttentionParams {
    const void* q;        // [batch][heads][q_len][head_dim] (bf16 / f16 bits)
    const void* k;        // [batch][kv_heads][kv_len][head_dim], or pages (see kv_offset)
    const void* v;        // as K
    float* o;             // [batch][heads][q_len][head_dim]
    float* lse;           // [batch][heads][q_len], natural log; -inf for a row that sees no key
    float* partial_o;     // split-KV: [splits][batch * heads * q_len][head_dim], each normalised
    float* partial_lse;   // split-KV: [splits][batch * heads * q_len]
    long long batch, heads, kv_heads, q_len, kv_len;
    long long window;     // 0 = none
    int causal;
    int splits;           // key-tile ranges per row block (split-KV); 1 = none
    float scale_log2;     // softmax scale * log2(e): the kernels work in base 2
    const int* block_table;  // paged KV cache: [batch][pages_per_seq] page indices
    long long page;          // keys per page; 0 = contiguous K and V
    long long pages_per_seq;
};

// Element offset of key `key`'s row for (batch, kv_head) in K or V: contiguous
// [batch][kv_heads][kv_len][head_dim], or a paged cache [page][page slot][kv_heads][head_dim]
// whose pages the block table lists per sequence.
LIBTUNE_HD long long kv_offset(const AttentionParams& p, long long batch, long long kv_head, long long key,
                               int head_dim) {
    if (p.page == 0) return ((batch * p.kv_heads + kv_head) * p.kv_len + key) * head_dim;
    const long long page = p.block_table[batch * p.pages_per_seq + key / p.page];
    return ((page * p.page + key % p.page) * p.kv_heads + kv_head) * head_dim;
}

// The argument of the backward kernel (attention_backward.h), both of its passes.
struct AttentionBackwardParams {
    AttentionParams a;  // Q, K, V; o and lse carry the forward's O and LSE (read only); shape, masks, scale
    const float* dout;  // [batch][heads][q_len][head_dim]
    float* dq;          // Q's layout
    float* dk;          // K's layout
    float* dv;          // V's layout
    float* ds;          // STORE: [batch][heads][q_len][kv_len], pass 0 writes, pass 1 reads
    int pass;           // 0: dK, dV; 1: dQ
};

// The keys query position `pos` (= i + kv_len - q_len) sees, [*first, *last): the device twin
// of tune::AttentionDims::key_range (a unit test holds the two equal).
LIBTUNE_HD void attention_key_range(long long pos, long long kv_len, int causal, long long window, long long* first,
                                    long long* last) {
    long long f = 0, l = kv_len;
    if (causal && pos + 1 < l) l = pos + 1;
    if (window > 0) {
        if (pos - window + 1 > f) f = pos - window + 1;
        if (!causal && pos + window < l) l = pos + window;
    }
    if (f > kv_len) f = kv_len;
    *first = f;
    *last = l > f ? l : f;
}

// Rows of one thread block: with GQA packing, row r of a kv head's block holds query position
// r / group of head kv_head * group + r % group (the group shares every K/V tile); without it,
// row r is position r of one head.
struct RowMap {
    long long group;      // query heads per kv head
    long long unit_rows;  // rows per unit (a kv head when packed, a query head otherwise)
    long long units;      // per batch item
    int gqa;
    LIBTUNE_HD long long position(long long row) const { return gqa ? row / group : row; }
    LIBTUNE_HD long long head(long long unit, long long row) const { return gqa ? unit * group + row % group : unit; }
    LIBTUNE_HD long long kv_head(long long unit) const { return gqa ? unit : unit / group; }
};

LIBTUNE_HD RowMap row_map(const AttentionParams& p, int gqa) {
    RowMap m;
    m.group = p.heads / p.kv_heads;
    m.gqa = gqa;
    m.units = gqa ? p.kv_heads : p.heads;
    m.unit_rows = gqa ? p.q_len * m.group : p.q_len;
    return m;
}

// The key tiles (of `key_tile` keys) block rows [row0, row_end) must visit, [*begin, *end), and
// the keys every one of its rows sees, [*all_first, *all_last): tiles inside need no mask.
// Masks only move forward with the position, so the first and last rows bound the rest.
LIBTUNE_HD void block_key_tiles(const AttentionParams& p, const RowMap& m, long long row0, long long row_end,
                                int key_tile, int* begin, int* end, long long* all_first, long long* all_last) {
    const long long shift = p.kv_len - p.q_len;
    long long f0, l0, f1, l1;
    attention_key_range(m.position(row0) + shift, p.kv_len, p.causal, p.window, &f0, &l0);
    attention_key_range(m.position(row_end - 1) + shift, p.kv_len, p.causal, p.window, &f1, &l1);
    *begin = int(f0 / key_tile);
    *end = l1 > f0 ? int((l1 + key_tile - 1) / key_tile) : *begin;
    *all_first = f1;
    *all_last = l0;
}

// Split-KV: the part `split` of `splits` of the tiles [begin, end): equal runs, the last ones
// possibly empty (they report no keys: O = 0, LSE = -inf, which the combine weighs as 0).
LIBTUNE_HD void split_tiles(int begin, int end, int splits, int split, int* split_begin, int* split_end) {
    const int per = (end - begin + splits - 1) / splits;
    const int b = begin + split * per;
    *split_begin = b < end ? b : end;
    *split_end = b + per < end ? b + per : end;
}

}  // namespace libtune
