// "cpu.attention.fused": flash-style attention on the CPU. Each task takes a tile of query rows
// (q_tile positions, times the group's query heads when gqa_pack is on, so each K/V tile is read
// once for all heads sharing it) and walks the keys they can see in k_tile steps: scores of the
// tile, an online-softmax step per row, then P V into the rows' accumulators. The score matrix
// is never materialised, and key tiles no row sees are never visited. split_kv (decode spaces)
// cuts each task's key range into parts that run as separate tasks, merged by a combine pass
// through their log-sum-exps. A bf16 problem stores Q, K and V as bf16 (a bf16 KV cache): every
// f32 inner loop runs on it, the rows widened to f32 as they are read, so a decode step reads
// half the bytes. A paged cache is read in place (KvRows), a run of rows per page; loop_order
// (decode spaces) = key_major gives a task every head unit, each key tile visited for all of
// them in turn, so a page's rows of every KV head are read together.
//
// Knob `inner` picks how a tile's two products are computed:
//  - a GEMM micro-kernel label (e.g. avx512_14x32): the blocked GEMM's register-tiled kernels.
//    S^T = K_tile (Q scale)^T is computed key-major (each K tile packed into MR-key panels as
//    the kernel's A; Q is transposed and scaled once per task, the kernel's B), so the softmax reduces each query's
//    column 16 queries at a time, and the probabilities serve in place as the A operand of
//    O += P V (V rows read in place as B). This runs both products at GEMM speed.
//  - a bf16 GEMM micro-kernel label (amx_32x32, avx512bf16_MRx32): both products in bf16 with
//    f32 accumulation, the softmax in f32. Offered only where the CPU has the ISA and the
//    problem's accuracy budget admits bf16 compute (admits_bf16_compute; the measurer still
//    checks every candidate against the fp64 reference). K and V are rounded to bf16 once per
//    call, into the kernels' VNNI panels (32 keys of K, 32 columns of V), shared by every query
//    tile and head of the group; each task rounds its scaled Q rows once, and S = Q K^T is
//    row-major, so each P tile is rounded to bf16 as the A operand of O += P V.
//  - "dot": register-blocked dot products (4 rows x 4 keys reduced in registers), which need no
//    transposed Q and no padding to the micro-kernel's tile: for decode's few rows.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "../../gemm/cpu/blocking_knobs.hpp"
#include "../../gemm/cpu/ukernel.hpp"
#include "common.hpp"
#include "fused.hpp"
#include "kernels.hpp"
#include "tune/templates/cpu_attention.hpp"

#ifndef LIBTUNE_CPU_ATTENTION_VERSION
#define LIBTUNE_CPU_ATTENTION_VERSION "unversioned"
#endif

namespace tune {
namespace {

using cpu_attention::Accumulators;
using cpu_attention::FusedConfig;
using cpu_attention::kKeyPanel;
using cpu_attention::Layout;
using cpu_attention::round16;
using cpu_attention::round_up;

constexpr const char* kName = "cpu.attention.fused";
// Query lengths up to this are decode steps: their spaces add split_kv.
constexpr std::int64_t kDecodeQLen = 16;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

constexpr const char* kDot = "dot";
// Knob loop_order: a task per head unit, or a task walking the keys once for all of them.
constexpr const char* kHeadMajor = "head_major";
constexpr const char* kKeyMajor = "key_major";
// Rows of a paged cache's next page prefetched ahead of the dot kernels (their own distance).
constexpr std::int64_t kPrefetchRows = 16;
// The decode default's GEMM micro-kernel, from this many rows per task (default_config).
constexpr const char* kDecodeGemm = "avx512_8x32";
constexpr std::int64_t kDecodeGemmRows = 128;
// The GEMM micro-kernels `inner` may name: 32 columns (f32: two zmm per row, so a query panel of
// the transposed Q and a d-panel of V are each one 32-float row per depth step; bf16: a VNNI
// panel of 32 keys of K or 32 columns of V).
bool tile_kernel(const cpu_gemm::Ukernel& u) {
    return u.nr == 32 && (u.bf16 ? true : u.isa == cpu_gemm::Isa::avx512f && u.mr >= 8);
}

const cpu_gemm::Ukernel* find_tile_kernel(const std::string& label) {
    for (auto list : {cpu_gemm::avx512_ukernels(), cpu_gemm::amx_ukernels(), cpu_gemm::avx512bf16_ukernels()})
        for (const auto& u : list)
            if (tile_kernel(u) && u.label == label) return &u;
    return nullptr;
}

// Head units of a sequence: its KV heads, each with its group, when GQA-packed; else its query heads.
std::int64_t head_units(const AttentionDims& a, bool gqa_pack) { return gqa_pack ? a.kv_heads : a.heads; }

Layout layout(const AttentionDims& a, const FusedConfig& c) {
    Layout l;
    l.rows = std::min(c.q_tile, a.q_len) * (c.gqa_pack ? a.group() : 1);
    const std::int64_t d = a.head_dim;
    if (c.bf16()) {
        cpu_attention::bf16_layout(a, c, l);
    } else if (c.ukernel) {
        const int MR = c.ukernel->mr, NR = c.ukernel->nr;
        l.o_rows = round_up(l.rows, MR);
        l.lds = round_up(l.o_rows, NR);
        l.ldo = round_up(d, NR);
        l.k_rows = round_up(c.k_tile, MR);
        // Q^T, scores, accumulators, m / l / alpha, the rows' key ranges (int32), the key tile
        // packed into MR-key panels, and a zero-padded V panel when d is not a multiple of NR.
        l.per_thread_floats = std::size_t(round16(d * l.lds) + l.k_rows * l.lds + l.o_rows * l.ldo + 5 * l.lds +
                                          round16(l.k_rows * d) + (d % NR ? c.k_tile * NR : 0));
    } else {
        l.lds = round16(c.k_tile);
        l.ldo = round16(d);
        // Scores, accumulators, and m, l, alpha and 1s per row (rounded to keep 64-byte alignment).
        l.per_thread_floats = std::size_t(l.rows * (l.lds + l.ldo) + round16(4 * l.rows));
    }
    // The dot kernels read a bf16 or paged K and V in place; the f32 micro-kernel path copies
    // each tile (widened, or gathered from its pages) into a K and a V tile buffer; the bf16 one
    // packs them once per call (pack_kv_bf16).
    const bool tile_copies = c.ukernel && !c.bf16() && (c.bf16_io || a.page > 0);
    if (c.bf16_io || tile_copies) {
        l.ldq = c.bf16_io ? d : 0;  // a head's rows stay d apart, as in Q itself (gemm_tiles transposes runs of them)
        l.widen_floats = std::size_t(round16(l.rows * l.ldq) + (tile_copies ? 2 * round16(c.k_tile * d) : 0));
        l.per_thread_floats += l.widen_floats;
    }
    l.unit_floats = l.per_thread_floats;
    l.units = c.key_major ? head_units(a, c.gqa_pack) : 1;
    l.per_thread_floats = l.unit_floats * std::size_t(l.units);
    l.partial_floats = c.split_kv > 1 ? std::size_t(a.batch * a.heads * a.q_len * c.split_kv * (d + 1)) : 0;
    return l;
}

// One KV head's K and V rows: f32 in place, or bf16 (k16, v16); contiguous (k, v: the head's
// first row), or in the pages of a paged cache (k, v: the pools; table: the sequence's block
// table row, checked against the pool at the start of the call). The dot inner loops read
// them in place, a page run at a time; the micro-kernel loops take f32 rows d apart, so keys()
// and values() widen or gather a tile into the thread's two tile buffers for them.
struct KvRows {
    const float *k = nullptr, *v = nullptr;
    const std::uint16_t *k16 = nullptr, *v16 = nullptr;
    float *k_tile = nullptr, *v_tile = nullptr;
    std::int64_t d = 0;
    const std::int32_t* table = nullptr;
    const AttentionDims* a = nullptr;  // paged: page size, kv_heads
    std::int64_t kv_head = 0;

    // Keys [j, j + n) begin with a run of rows ld() apart: the element offset of its first row
    // and its length (all n when contiguous; when paged, up to the end of j's page and on through
    // the pages that follow it in the pool, as a runtime that allocates in order leaves them).
    std::pair<std::int64_t, std::int64_t> run(std::int64_t j, std::int64_t n) const {
        if (!table) return {j * d, n};
        const std::int64_t slot = j % a->page, first = j / a->page, page = table[first];
        std::int64_t len = std::min(n, a->page - slot);
        while (len < n && table[(j + len) / a->page] == page + (j + len) / a->page - first)
            len = std::min(n, len + a->page);
        return {a->page_row(page, slot, kv_head) * d, len};
    }
    std::int64_t ld() const { return table ? a->kv_heads * d : d; }
    // Rows [j0, j0 + n) of K, and of V, as f32 rows d apart.
    const float* keys(std::int64_t j0, std::int64_t n) const { return rows(k, k16, k_tile, j0, n); }
    const float* values(std::int64_t j0, std::int64_t n) const { return rows(v, v16, v_tile, j0, n); }

private:
    const float* rows(const float* f32, const std::uint16_t* bf16, float* tile, std::int64_t j0, std::int64_t n) const {
        if (!table) {
            if (!bf16) return f32 + j0 * d;
            cpu_attention::widen_bf16(bf16 + j0 * d, n * d, tile);
            return tile;
        }
        for (std::int64_t c = 0; c < n;) {
            const auto [at, len] = run(j0 + c, n - c);
            for (std::int64_t r = 0; r < len; ++r) {
                const std::int64_t from = at + r * ld();
                if (bf16)
                    cpu_attention::widen_bf16(bf16 + from, d, tile + (c + r) * d);
                else
                    std::copy(f32 + from, f32 + from + d, tile + (c + r) * d);
            }
            c += len;
        }
        return tile;
    }
};

// Whether the config reads a paged cache in place; the bf16 inner kernels pack K and V from a
// contiguous copy once per call (pack_kv_bf16).
bool gathers_pages(const AttentionDims& a, const FusedConfig& c) { return a.page > 0 && c.bf16(); }

std::size_t gather_bytes(const AttentionDims& a, const FusedConfig& c) {
    return gathers_pages(a, c) ? cpu_attention::paged_gather_bytes(a, c.bf16_io ? sizeof(std::uint16_t) : sizeof(float))
                               : 0;
}

// Task groups of a call: one per (sequence, head unit, query tile), a head unit being a KV head
// with all its query heads when GQA-packed, else one query head; each group is split_kv tasks.
// key_major: one per (sequence, query tile), holding every head unit.
std::int64_t task_groups(const AttentionDims& a, const FusedConfig& c) {
    const std::int64_t units = c.key_major ? 1 : head_units(a, c.gqa_pack);
    return a.batch * units * ((a.q_len + c.q_tile - 1) / c.q_tile);
}

std::size_t workspace_floats(const AttentionDims& a, const FusedConfig& c) {
    const Layout l = layout(a, c);
    return l.per_thread_floats * std::size_t(c.threads) + l.partial_floats + l.packed_kv_floats;
}

class FusedKernel final : public Kernel {
public:
    FusedKernel(const AttentionDims& a, const FusedConfig& c, std::shared_ptr<ThreadPool> pool)
        : a_(a), c_(c), l_(layout(a, c)), pool_(std::move(pool)), scratch_(workspace_floats(a, c) * sizeof(float)),
          gathered_(gather_bytes(a, c)) {}

    void run(const OpArgs& args) const override {
        auto x = cpu_attention::unpack(args, kName, a_, c_.bf16_io);
        auto gathered = gathered_.take();
        if (gathers_pages(a_, c_))
            cpu_attention::gather_paged(a_, x, gathered.floats());
        else if (a_.page > 0)
            cpu_attention::check_block_table(a_, x.table, x.pool_pages);
        auto lease = scratch_.take();
        float* ws = lease.floats();
        float* partial = ws + l_.per_thread_floats * std::size_t(c_.threads);
        auto* packed_kv = reinterpret_cast<std::uint16_t*>(partial + l_.partial_floats);
        if (c_.bf16()) cpu_attention::pack_kv_bf16(a_, c_, l_, x, packed_kv, ws, *pool_);

        const std::int64_t group_units = head_units(a_, c_.gqa_pack) / l_.units;  // head units that are separate groups
        const std::int64_t q_tiles = (a_.q_len + c_.q_tile - 1) / c_.q_tile;
        const std::int64_t groups = task_groups(a_, c_), tasks = groups * c_.split_kv;
        // Splits of a group done so far: the last one to finish merges the group's rows, so the
        // combine needs no second pass over the threads.
        std::vector<std::atomic<std::int64_t>> done(c_.split_kv > 1 ? std::size_t(groups) : 0);
        std::atomic<std::int64_t> next{0};
        pool_->parallel_for(c_.threads, [&](int t) {
            float* mine = ws + l_.per_thread_floats * std::size_t(t);
            TaskScratch scratch;
            scratch.q_rows.resize(std::size_t(l_.rows * l_.units));
            std::vector<Task> units(std::size_t(l_.units));
            for (std::int64_t id; (id = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
                // Last query tiles first: under a causal mask they see the most keys.
                const std::int64_t split = id % c_.split_kv, group = id / c_.split_kv;
                const std::int64_t tile = q_tiles - 1 - group % q_tiles, b = group / q_tiles / group_units;
                const std::int64_t unit0 = group / q_tiles % group_units * l_.units;
                for (std::int64_t u = 0; u < l_.units; ++u) units[std::size_t(u)] = task_of(b, unit0 + u, tile * c_.q_tile);
                run_task(x, units, split, mine, scratch, partial, packed_kv);
                if (c_.split_kv > 1 &&
                    done[std::size_t(group)].fetch_add(1, std::memory_order_acq_rel) + 1 == c_.split_kv)
                    for (const Task& task : units)
                        for (int r = 0; r < task.rows; ++r) combine(x, partial, task.row(r));
            }
            if (c_.ukernel && c_.ukernel->release) c_.ukernel->release();
        });
    }

    std::size_t workspace_bytes() const override { return scratch_.bytes() + gathered_.bytes(); }

private:
    // One task's query rows: `positions` positions from q0 of each query head from head0 (one,
    // or the KV head's group with gqa_pack); row r is position r % positions of head r / positions.
    struct Task {
        std::int64_t b, head0, q0, positions, all_heads, q_len;
        int rows;
        // Its index among the rows of O (and of LSE).
        std::int64_t row(int r) const { return (b * all_heads + head0 + r / positions) * q_len + q0 + r % positions; }
    };

    Task task_of(std::int64_t b, std::int64_t unit, std::int64_t q0) const {
        const std::int64_t positions = std::min(c_.q_tile, a_.q_len - q0);
        const std::int64_t head0 = c_.gqa_pack ? unit * a_.group() : unit;
        return {b, head0, q0, positions, a_.heads, a_.q_len, int(positions * (c_.gqa_pack ? a_.group() : 1))};
    }

    // The register dot-product inner loops: a task's scores, accumulators, running maxima and
    // denominators, rescale factors and 1s (a tile's later page runs add to O without
    // rescaling it), in its workspace.
    struct DotState {
        float *s, *o, *m, *l, *alpha, *ones;
    };

    // A thread's per-task bookkeeping, kept across its tasks (no allocation per task).
    struct TaskScratch {
        std::vector<const float*> q_rows;  // every unit's query rows
        std::vector<KvRows> kv;
        std::vector<Accumulators> acc;
        std::vector<DotState> state;
    };

    // One work item: a task per head unit in `units` (one, or every head unit with key_major),
    // over `split` of the keys the query tile sees. Unit u works in ws + u * unit_floats.
    void run_task(const cpu_attention::Operands& x, const std::vector<Task>& units, std::int64_t split, float* ws,
                  TaskScratch& scratch, float* partial, const std::uint16_t* packed_kv) const {
        std::vector<const float*>& q_rows = scratch.q_rows;
        std::vector<KvRows>& kv = scratch.kv;
        std::vector<Accumulators>& acc = scratch.acc;
        const std::int64_t d = a_.head_dim, positions = units.front().positions, q0 = units.front().q0;
        const int rows = units.front().rows;
        // Keys any row of the tile sees (ranges move forward with the query), then this split's part.
        std::int64_t first = a_.key_range(q0).first, last = a_.key_range(q0 + positions - 1).second;
        // bf16 key tiles start on a packed K panel (the keys before `first` are masked).
        const std::int64_t align = c_.bf16() ? kKeyPanel : 16;
        if (c_.bf16()) first = first / kKeyPanel * kKeyPanel;
        if (c_.split_kv > 1) {
            const std::int64_t part = round_up((last - first + c_.split_kv - 1) / c_.split_kv, align);
            last = std::min(last, first + (split + 1) * part);
            first = std::min(last, first + split * part);
        }
        kv.clear();
        acc.resize(units.size());
        for (std::size_t u = 0; u < units.size(); ++u) {
            float* mine = ws + u * l_.unit_floats;
            kv.push_back(unit_rows(x, units[u], mine, q_rows.data() + u * std::size_t(rows)));
        }
        if (c_.bf16()) {
            const std::size_t head = std::size_t(units.front().b * a_.kv_heads + units.front().head0 / a_.group());
            acc[0] = cpu_attention::bf16_tiles(a_, c_, l_, {q_rows.data(), rows, positions, q0},
                                               packed_kv + head * std::size_t(l_.kv_pad * l_.depth),
                                               packed_kv + std::size_t(a_.batch * a_.kv_heads * l_.kv_pad * l_.depth) +
                                                   head * std::size_t(l_.kv_pad * l_.ldo),
                                               first, last, ws);
        } else if (c_.ukernel) {
            acc[0] = gemm_tiles(q_rows, rows, positions, q0, kv[0], first, last, ws);
        } else {
            // The dot loops: each key tile for every unit (key_major: all head units).
            std::vector<DotState>& state = scratch.state;
            state.clear();
            for (std::size_t u = 0; u < units.size(); ++u) state.push_back(dot_begin(ws + u * l_.unit_floats, rows));
            for (std::int64_t j0 = first; j0 < last; j0 += c_.k_tile)
                dot_step(state, q_rows.data(), rows, positions, q0, kv, j0, std::min(c_.k_tile, last - j0), last);
            for (std::size_t u = 0; u < units.size(); ++u) acc[u] = {state[u].o, state[u].m, state[u].l};
        }
        for (std::size_t u = 0; u < units.size(); ++u)
            for (int r = 0; r < rows; ++r) {
                const std::int64_t row = units[u].row(r);
                float* dst = c_.split_kv > 1 ? partial + (split * a_.batch * a_.heads * a_.q_len + row) * (d + 1)
                                             : x.o + row * d;
                const float lr = acc[u].l[r];
                const float inv = lr > 0 ? 1.0f / lr : 0.0f;
                for (std::int64_t e = 0; e < d; ++e) dst[e] = acc[u].o[r * l_.ldo + e] * inv;
                const float lse = lr > 0 ? acc[u].m[r] + std::log(lr) : kNegInf;
                if (c_.split_kv > 1)
                    dst[d] = lse;
                else
                    x.lse[row] = lse;
            }
    }

    // A task's query rows into `q_rows` (bf16 ones widened into the end of its workspace `ws`)
    // and its KV head's rows.
    KvRows unit_rows(const cpu_attention::Operands& x, const Task& task, float* ws, const float** q_rows) const {
        const std::int64_t d = a_.head_dim, b = task.b, kvh = task.head0 / a_.group();
        float* widened = ws + l_.unit_floats - l_.widen_floats;  // bf16_io: Q rows, K tile, V tile
        for (int r = 0; r < task.rows; ++r) {
            if (x.bf16()) {
                float* row = widened + r * l_.ldq;
                cpu_attention::widen_bf16(x.q16 + task.row(r) * d, d, row);
                q_rows[r] = row;
            } else {
                q_rows[r] = x.q + task.row(r) * d;
            }
        }
        KvRows kv{.d = d};
        // Contiguous: the head's first row; paged (read in place): the pools and the sequence's table.
        std::int64_t head_at = (b * a_.kv_heads + kvh) * a_.kv_len * d;
        if (a_.page > 0 && !gathers_pages(a_, c_)) {
            head_at = 0;
            kv.table = x.table + b * a_.pages_per_sequence();
            kv.a = &a_;
            kv.kv_head = kvh;
        }
        if (x.bf16())
            kv.k16 = x.k16 + head_at, kv.v16 = x.v16 + head_at;
        else
            kv.k = x.k + head_at, kv.v = x.v + head_at;
        if (l_.widen_floats > std::size_t(round16(l_.rows * l_.ldq))) {  // the micro-kernel loops' tile buffers
            kv.k_tile = widened + round16(l_.rows * l_.ldq);
            kv.v_tile = kv.k_tile + round16(c_.k_tile * d);
        }
        return kv;
    }

    DotState dot_begin(float* ws, int rows) const {
        DotState st;
        st.s = ws;
        st.o = st.s + l_.rows * l_.lds;
        st.m = st.o + l_.rows * l_.ldo;
        st.l = st.m + l_.rows;
        st.alpha = st.l + l_.rows;
        st.ones = st.alpha + l_.rows;
        std::fill(st.o, st.o + rows * l_.ldo, 0.0f);
        std::fill(st.m, st.m + rows, kNegInf);
        std::fill(st.l, st.l + rows, 0.0f);
        std::fill(st.ones, st.ones + rows, 1.0f);
        return st;
    }

    // Keys [j0, j0 + n) of the tasks' range [.., last), for every unit u (its state st[u],
    // query rows q_rows + u * rows, KV rows kv[u]). K and V are read in place, a run of rows at
    // a time (one run per tile unless the cache is paged), each run for every unit in turn: a
    // paged cache stores a run's rows of every KV head together, so they are read as one block.
    // The kernels widen a bf16 cache's rows in registers.
    void dot_step(const std::vector<DotState>& st, const float* const* q_rows, int rows, std::int64_t positions,
                  std::int64_t q0, const std::vector<KvRows>& kv, std::int64_t j0, std::int64_t keys,
                  std::int64_t last) const {
        const std::int64_t d = a_.head_dim;
        const int n = int(keys);
        const auto scale = float(a_.scale);
        for (int c = 0; c < n;) {
            const std::int64_t len = kv[0].run(j0 + c, n - c).second;  // the same for every unit
            for (std::size_t u = 0; u < st.size(); ++u) {
                const KvRows& x = kv[u];
                const std::int64_t at = x.run(j0 + c, n - c).first;
                if (x.table) prefetch_next_run(x, x.k, x.k16, j0 + c + len, last);
                const float* const* q = q_rows + u * std::size_t(rows);
                if (x.k16)
                    cpu_attention::scores(q, rows, x.k16 + at, x.ld(), int(len), int(d), scale, st[u].s + c, l_.lds);
                else
                    cpu_attention::scores(q, rows, x.k + at, x.ld(), int(len), int(d), scale, st[u].s + c, l_.lds);
            }
            c += int(len);
        }
        for (const DotState& t : st)
            for (int r = 0; r < rows; ++r) {
                auto [lo, hi] = a_.key_range(q0 + r % positions);
                t.alpha[r] = cpu_attention::softmax_step(t.s + r * l_.lds, n, int(std::max<std::int64_t>(lo - j0, -1)),
                                                         int(std::min<std::int64_t>(hi - j0, n)), t.m[r], t.l[r]);
            }
        for (int c = 0; c < n;) {
            const std::int64_t len = kv[0].run(j0 + c, n - c).second;
            for (std::size_t u = 0; u < st.size(); ++u) {
                const KvRows& x = kv[u];
                const std::int64_t at = x.run(j0 + c, n - c).first;
                const float* rescale = c == 0 ? st[u].alpha : st[u].ones;
                if (x.table) prefetch_next_run(x, x.v, x.v16, j0 + c + len, last);
                if (x.v16)
                    cpu_attention::pv_update(st[u].s + c, l_.lds, rows, rescale, x.v16 + at, x.ld(), int(len), int(d),
                                             st[u].o, l_.ldo);
                else
                    cpu_attention::pv_update(st[u].s + c, l_.lds, rows, rescale, x.v + at, x.ld(), int(len), int(d),
                                             st[u].o, l_.ldo);
            }
            c += int(len);
        }
    }

    // The first rows of the run that starts at key j (none at `last`): in flight while the
    // current run is computed, as the kernels' own prefetch is for the rows of one run.
    static void prefetch_next_run(const KvRows& kv, const float* f32, const std::uint16_t* bf16, std::int64_t j,
                                  std::int64_t last) {
        if (j >= last) return;
        const auto [at, len] = kv.run(j, std::min<std::int64_t>(last - j, kPrefetchRows));
        if (bf16)
            cpu_attention::prefetch_rows(bf16 + at, kv.ld(), int(len), int(kv.d));
        else
            cpu_attention::prefetch_rows(f32 + at, kv.ld(), int(len), int(kv.d));
    }

    // The GEMM-tiled inner loops over keys [first, last) (see the file comment).
    Accumulators gemm_tiles(const std::vector<const float*>& q_rows, int rows, std::int64_t positions,
                            std::int64_t q0, const KvRows& kv, std::int64_t first, std::int64_t last,
                            float* ws) const {
        const cpu_gemm::Ukernel& u = *c_.ukernel;
        const int MR = u.mr, NR = u.nr;
        const std::int64_t d = a_.head_dim, lds = l_.lds, ldo = l_.ldo;
        float* qt = ws;  // d x lds: element (e, r) = scale * Q[row r][e]
        float* s = qt + round16(d * lds);
        float* o = s + l_.k_rows * lds;
        float* m = o + l_.o_rows * ldo;
        float* l = m + lds;
        float* alpha = l + lds;
        auto* lo = reinterpret_cast<std::int32_t*>(alpha + lds);
        auto* hi = lo + lds;
        float* k_pack = reinterpret_cast<float*>(hi + lds);
        float* v_edge = k_pack + round16(l_.k_rows * d);

        // Q^T, scaled: rows of one head are contiguous, so transpose them in runs of up to 16.
        for (int r = 0; r < rows;) {
            const int run = int(std::min<std::int64_t>({cpu_gemm::kMaxTransposeRows, rows - r, positions - r % positions}));
            u.transpose(q_rows[std::size_t(r)], d, run, d, qt + r, lds);
            r += run;
        }
        for (std::int64_t e = 0; e < d; ++e) std::fill(qt + e * lds + rows, qt + (e + 1) * lds, 0.0f);
        cpu_attention::scale_row(qt, d * lds, float(a_.scale));

        // Key ranges per row; padding rows see nothing. A tile inside every real row's range
        // needs no mask.
        std::int64_t lo_max = 0, hi_min = a_.kv_len;
        for (std::int64_t r = 0; r < lds; ++r) {
            auto [f, e] = r < rows ? a_.key_range(q0 + r % positions) : std::pair<std::int64_t, std::int64_t>{0, 0};
            lo[r] = std::int32_t(f);
            hi[r] = std::int32_t(e);
            if (r < rows) lo_max = std::max(lo_max, f), hi_min = std::min(hi_min, e);
        }
        std::fill(o, o + l_.o_rows * ldo, 0.0f);
        std::fill(m, m + lds, kNegInf);
        std::fill(l, l + lds, 0.0f);
        const int cols = int(round16(l_.o_rows));  // score columns the softmax and P V use

        for (std::int64_t j0 = first; j0 < last; j0 += c_.k_tile) {
            const int n = int(std::min(c_.k_tile, last - j0));
            // The tile's keys packed into panels of MR (key i0 + i, element e at k_pack[i0 * d +
            // e * MR + i]; zero past the tile), so the kernel reads its A contiguously rather than
            // MR strided rows, once per query panel.
            const float* k = kv.keys(j0, n);  // the tile's rows
            for (int i0 = 0; i0 < n; i0 += MR) {
                const int keys = std::min(MR, n - i0);
                float* panel = k_pack + i0 * d;
                u.transpose(k + i0 * d, d, keys, d, panel, MR);
                if (keys < MR)
                    for (std::int64_t e = 0; e < d; ++e) std::fill(panel + e * MR + keys, panel + (e + 1) * MR, 0.0f);
            }
            // S^T = K_tile Q^T, one query panel (d x 32 of Q^T, in L1) against the tile's key panels.
            for (std::int64_t jc = 0; jc < cols; jc += NR)
                for (int i0 = 0; i0 < n; i0 += MR)
                    u.contiguous(d, k_pack + i0 * d, MR, qt + jc, lds, s + i0 * lds + jc, lds, false);
            const bool all_visible = lo_max <= j0 && j0 + n <= hi_min;
            cpu_attention::softmax_columns(s, lds, n, cols, std::int32_t(j0), lo, hi, all_visible, m, l, alpha);
            cpu_attention::scale_rows(o, ldo, int(l_.o_rows), int(ldo), alpha);
            // O += P V: P^T (key-major scores) is the kernel's A in place, V's rows its B.
            const float* v = kv.values(j0, n);
            for (std::int64_t col = 0; col < ldo; col += NR) {
                const float* b = v + col;
                std::int64_t ldb = d;
                if (col + NR > d) {  // the last columns, zero-padded: nothing past V is read
                    for (int j = 0; j < n; ++j) {
                        std::copy(b + j * d, b + j * d + (d - col), v_edge + j * NR);
                        std::fill(v_edge + j * NR + (d - col), v_edge + (j + 1) * NR, 0.0f);
                    }
                    b = v_edge;
                    ldb = NR;
                }
                for (std::int64_t i0 = 0; i0 < l_.o_rows; i0 += MR)
                    u.contiguous(n, s + i0, lds, b, ldb, o + i0 * ldo + col, ldo, true);
            }
        }
        return {o, m, l};
    }

    // Row `row` of O = sum_s w_s O_s / sum_s w_s with w_s = exp(lse_s - max lse): the splits'
    // softmaxes merged.
    void combine(const cpu_attention::Operands& x, const float* partial, std::int64_t row) const {
        const std::int64_t d = a_.head_dim, stride = a_.batch * a_.heads * a_.q_len * (d + 1);
        float top = kNegInf;
        for (std::int64_t s = 0; s < c_.split_kv; ++s) top = std::max(top, partial[s * stride + row * (d + 1) + d]);
        float* out = x.o + row * d;
        std::fill(out, out + d, 0.0f);
        if (top == kNegInf) {
            x.lse[row] = kNegInf;
            return;
        }
        float total = 0;
        for (std::int64_t s = 0; s < c_.split_kv; ++s) {
            const float* part = partial + s * stride + row * (d + 1);
            if (part[d] == kNegInf) continue;
            const float w = std::exp(part[d] - top);
            total += w;
            for (std::int64_t e = 0; e < d; ++e) out[e] += w * part[e];
        }
        cpu_attention::scale_row(out, d, 1.0f / total);
        x.lse[row] = top + std::log(total);
    }

    AttentionDims a_;
    FusedConfig c_;
    Layout l_;
    std::shared_ptr<ThreadPool> pool_;
    cpu_gemm::ScratchPool scratch_;
    cpu_gemm::ScratchPool gathered_;  // a paged cache's K and V, contiguous (bf16 inner kernels only)
};

// The config's knobs, for a problem of dtype p.dtype (bf16: Q, K and V stored as bf16).
FusedConfig fused_config(const Config& c, const Problem& p) {
    const std::string inner = c.get_str("inner");
    const cpu_gemm::Ukernel* u = inner == kDot ? nullptr : find_tile_kernel(inner);
    if (inner != kDot && !u) throw Error(std::string(kName) + ": unknown inner kernel '" + inner + "'");
    FusedConfig f{c.get_int("q_tile"), c.get_int("k_tile"), c.has("split_kv") ? c.get_int("split_kv") : 1,
                  c.has("gqa_pack") && c.get_int("gqa_pack") != 0, int(c.get_int("threads")), u};
    f.bf16_io = p.dtype == DType::bf16;
    f.key_major = c.has("loop_order") && c.get_str("loop_order") == kKeyMajor;
    return f;
}

class FusedTemplate final : public Template {
public:
    explicit FusedTemplate(const DeviceInfo& device)
        : info_{kName, OpKind::attention, Backend::cpu, LIBTUNE_CPU_ATTENTION_VERSION, false}, device_(device) {
        const int cores = std::max(1, device.cores);
        std::vector<std::string> inner{kDot};
        for (const auto& u : cpu_gemm::avx512_ukernels())
            if (tile_kernel(u)) inner.emplace_back(u.label);
        std::vector<std::string> inner_bf16 = inner;
        for (const cpu_gemm::Ukernel* u : cpu_gemm::device_bf16_ukernels(device))
            if (tile_kernel(*u)) inner_bf16.emplace_back(u->label);
        has_bf16_ = inner_bf16.size() > inner.size();
        // One space per (decode or not) x (grouped heads or not) x (bf16 compute admitted and
        // runnable or not); built once.
        for (int decode = 0; decode < 2; ++decode)
            for (int grouped = 0; grouped < 2; ++grouped)
                for (int bf16 = 0; bf16 < 2; ++bf16)
                    spaces_[decode][grouped][bf16] = make_space(decode != 0, grouped != 0, bf16 ? inner_bf16 : inner, cores);
        pool_ = shared_thread_pool(cores);
    }

    const TemplateInfo& info() const override { return info_; }
    // f32 problems, and bf16 ones (Q, K, V stored as bf16: a bf16 KV cache), widened to f32 as
    // they are read, so every f32 inner loop runs on them.
    bool supports(const Problem& p) const override {
        return cpu_attention::supports_problem(p, device_, false, /*bf16_io=*/true);
    }

    std::shared_ptr<const Space> space(const Problem& p) const override {
        const AttentionDims a = attention_dims(p);
        // bf16 compute under the budget the caller opted into; for a bf16 problem too (its
        // inputs are exact in bf16, but P is rounded to bf16 before P V).
        const bool bf16_compute = p.dtype == DType::bf16
                                      ? p.tolerance > 0 && p.tolerance >= bf16_compute_tolerance(p)
                                      : admits_bf16_compute(p);
        return spaces_[a.q_len <= kDecodeQLen][a.group() > 1][has_bf16_ && bf16_compute];
    }

    // Decode: split each task's keys until there are as many tasks as threads (or the largest
    // split). A split costs partial rows and a combine pass, and once every thread has a task
    // the step is bound by reading K and V: GQA 32/8 on 2 threads, 8 tasks, reads them at
    // 79-103% of a plain read's rate without a split. A fixed split leaves threads idle on a
    // machine with more threads than tasks (MQA: one task per sequence).
    Config default_config(const Problem& p) const override {
        Config c = space(p)->default_config();
        const AttentionDims a = attention_dims(p);
        const Knob* split = space(p)->knob("split_kv");
        if (!split) return c;
        // A decode task with many query rows (16 positions of an MQA group of 8) is a small
        // GEMM: at 128 rows the 8 x 32 micro-kernel beat the dot kernels on epyc-2c by
        // 1.2-1.4x; at 32 and 64 rows neither won reliably (docs/performance.md).
        if (layout(a, fused_config(c, p)).rows >= kDecodeGemmRows && space(p)->knob("inner")->index_of(std::string(kDecodeGemm)) >= 0)
            c.set("inner", std::string(kDecodeGemm));
        // A paged cache with several KV heads: key-major reads each page for every head in
        // turn; per head, a task reads one slice of every page (1.0-2.0x slower on epyc-2c,
        // docs/performance.md).
        if (a.page > 0 && head_units(a, fused_config(c, p).gqa_pack) > 1 && c.get_str("inner") == kDot)
            c.set("loop_order", std::string(kKeyMajor));
        const std::int64_t tasks = task_groups(a, fused_config(c, p));
        for (const auto& v : split->values) {
            c.set("split_kv", v);
            if (tasks * std::get<std::int64_t>(v) >= c.get_int("threads")) break;
        }
        return c;
    }

    std::unique_ptr<Kernel> instantiate(const Problem& p, const Config& c) const override {
        if (!supports(p)) throw Error(std::string(kName) + ": unsupported problem " + shape_key(p));
        validate(p);
        space(p)->validate(c);
        return std::make_unique<FusedKernel>(attention_dims(p), fused_config(c, p), pool_);
    }

    std::size_t workspace_bytes(const Problem& p, const Config& c) const override {
        const AttentionDims a = attention_dims(p);
        const FusedConfig f = fused_config(c, p);
        return workspace_floats(a, f) * sizeof(float) + gather_bytes(a, f);
    }

    // A query tile of at least q_len positions is one tile whatever its size (layout() and
    // task_of() clip it to q_len): at decode every q_tile is one class.
    Config equivalence_key(const Problem& p, const Config& c) const override {
        if (p.op != OpKind::attention) return c;
        // One head unit per sequence (MQA packed, or one head): both loop orders are one task.
        if (const KnobValue* order = c.find("loop_order")) {
            const AttentionDims a = attention_dims(p);
            const bool packed = c.has("gqa_pack") && c.get_int("gqa_pack") != 0;
            if (head_units(a, packed) == 1 && *order != KnobValue{std::string(kHeadMajor)}) {
                Config key = c;
                return equivalence_key(p, key.set("loop_order", std::string(kHeadMajor)));
            }
        }
        const KnobValue* q_tile = c.find("q_tile");
        if (!q_tile || !std::holds_alternative<std::int64_t>(*q_tile) ||
            std::get<std::int64_t>(*q_tile) < attention_dims(p).q_len)
            return c;
        Config key = c;
        return key.set("q_tile", std::int64_t{0});
    }

private:
    static std::shared_ptr<const Space> make_space(bool decode, bool grouped, const std::vector<std::string>& inner,
                                                   int cores) {
        auto s = std::make_shared<Space>();
        if (decode)
            s->add(Knob::ints("q_tile", {1, 4, 16}, 16, "query positions per task"));
        else
            s->add(Knob::ints("q_tile", {8, 16, 32, 64, 128}, 32, "query positions per task"));
        s->add(Knob::ints("k_tile", {32, 64, 128, 256, 512}, decode ? 256 : 128,
                          "keys per online-softmax step (the score buffer is rows x k_tile)"));
        // Decode has few rows per task: padding them to a micro-kernel tile wastes most of it.
        s->add(Knob::categorical("inner", inner, decode ? kDot : "avx512_14x32",
                                 "inner loops: a GEMM micro-kernel (MR x 32 register tile; bf16 kernels compute "
                                 "both products in bf16) or register dot products"));
        if (grouped)
            s->add(Knob::boolean("gqa_pack", true,
                                 "one task holds every query head of a KV head, so each K/V tile is read once"));
        if (decode) {
            s->add(Knob::ints("split_kv", {1, 2, 4, 8, 16}, 4,
                              "parts each task's key range is cut into (separate tasks, merged by a combine pass)"));
            // A paged cache stores a page's keys for every KV head together: one task per head
            // reads a slice of each page; key_major reads whole pages.
            s->add(Knob::categorical("loop_order", {kHeadMajor, kKeyMajor}, kHeadMajor,
                                     "head_major: a task per head unit; key_major: a task takes every head unit of "
                                     "its query tile and visits each key tile for all of them (dot inner loops)"));
            s->require("key_major_with_dot_inner", [](const Config& c) {
                return c.get_str("loop_order") != kKeyMajor || c.get_str("inner") == kDot;
            });
        }
        s->add(cpu_attention::threads_knob(cores, "threads taking tasks"));
        // Mixed precision: local search also starts from the defaults on the first (fastest)
        // bf16 kernel, a region one neighbour step rarely reaches.
        if (!decode)
            for (const std::string& label : inner)
                if (const cpu_gemm::Ukernel* u = find_tile_kernel(label); u && u->bf16) {
                    Config c = s->default_config();
                    s->add_start(c.set("inner", label));
                    break;
                }
        return s;
    }

    TemplateInfo info_;
    DeviceInfo device_;
    std::shared_ptr<const Space> spaces_[2][2][2];
    bool has_bf16_ = false;  // a bf16 micro-kernel with 32 columns runs here
    std::shared_ptr<ThreadPool> pool_;
};

}  // namespace

std::unique_ptr<Template> make_cpu_attention_fused_template(const DeviceInfo& device) {
    return std::make_unique<FusedTemplate>(device);
}

}  // namespace tune
