// Pieces of cpu.attention.fused shared by its driver (fused.cpp) and its bf16 inner loops
// (fused_bf16.cpp): the decoded config, the workspace layout and one task's query rows.
#pragma once

#include <cstdint>

#include "../../gemm/cpu/ukernel.hpp"
#include "common.hpp"

namespace tune::cpu_attention {

struct FusedConfig {
    std::int64_t q_tile, k_tile, split_kv;
    bool gqa_pack;
    int threads;
    const cpu_gemm::Ukernel* ukernel;  // null: the "dot" inner loops
    bool bf16_io = false;              // Q, K and V stored as bf16 (a bf16 problem), widened to f32
    // Loop order: a task takes every head unit of its query tile and walks the keys once for all
    // of them (each key tile visited for head unit 0, 1, ...), rather than one head unit per task.
    bool key_major = false;
    bool bf16() const { return ukernel && ukernel->bf16; }
};

struct Layout {
    std::int64_t rows;      // query rows per task
    std::int64_t lds, ldo;  // score and accumulator row strides (floats)
    // GEMM-tiled (ukernel set): o_rows = rows padded to MR. f32: scores are key-major, k_rows x
    // lds with lds = o_rows padded to NR (= 32). bf16: scores are row-major, lds = k_tile.
    std::int64_t k_rows = 0, o_rows = 0;
    // bf16: Q rows padded to `depth` bf16 (the kernel's k_align), keys padded to kv_pad.
    std::int64_t depth = 0, kv_pad = 0;
    std::size_t per_thread_floats;
    // Head units per task (key_major: all of them) and each one's share of per_thread_floats:
    // its scores, accumulators and widened rows.
    std::int64_t units = 1;
    std::size_t unit_floats = 0;
    // bf16_io: the last floats of each thread's workspace hold its Q rows widened to f32 (rows,
    // ldq = head_dim apart) and one K and one V tile widened (k_tile x head_dim each); included
    // above.
    std::int64_t ldq = 0;
    std::size_t widen_floats = 0;
    std::size_t partial_floats;        // split_kv > 1: every split's normalised O and LSE
    std::size_t packed_kv_floats = 0;  // bf16: K and V of every (batch, kv head) (pack_kv_bf16)
};

// Keys per VNNI panel of packed K, and the alignment of bf16 key ranges.
inline constexpr std::int64_t kKeyPanel = 32;

using cpu_gemm::round_up;
// Floats that hold n bf16 values, rounded to keep 64-byte alignment.
inline std::int64_t bf16_floats(std::int64_t n) { return round16((n + 1) / 2); }

// One task's query rows (row r at q[r]; `positions` consecutive positions from q0 per head).
struct TaskRows {
    const float* const* q;
    int rows;
    std::int64_t positions, q0;
};

// Where a task's unnormalised O rows (ldo apart), running maxima and denominators lie.
struct Accumulators {
    const float *o, *m, *l;
};

// The bf16 parts of a Layout (rows already set).
void bf16_layout(const AttentionDims& a, const FusedConfig& c, Layout& l);

// K and V of every (batch, kv head) rounded to bf16 into `packed` (l.packed_kv_floats), in the
// bf16 kernels' B layouts; ws: the threads' workspaces (l.per_thread_floats each).
void pack_kv_bf16(const AttentionDims& a, const FusedConfig& c, const Layout& l, const Operands& x,
                  std::uint16_t* packed, float* ws, ThreadPool& pool);

// The bf16 inner loops of one task over keys [first, last), first a multiple of kKeyPanel; kp, vp:
// its KV head's packed K and V; ws: the thread's workspace.
Accumulators bf16_tiles(const AttentionDims& a, const FusedConfig& c, const Layout& l, const TaskRows& t,
                        const std::uint16_t* kp, const std::uint16_t* vp, std::int64_t first, std::int64_t last,
                        float* ws);

}  // namespace tune::cpu_attention
