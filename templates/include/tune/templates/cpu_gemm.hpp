// CPU GEMM templates: the BLIS-style blocked template (own micro-kernels, blocking as knobs)
// and the OpenBLAS and oneDNN vendor templates, so a tuned pick is compared with and can be
// the library.
#pragma once

#include <memory>

#include "tune/kernel.hpp"
#include "tune/openblas_env.hpp"  // kOpenblasSettleSeconds

namespace tune {

// "cpu.gemm.blocked": f32, register tile from the micro-kernels this CPU can run (AVX-512,
// AVX2), MC/KC/NC cache blocking, packing on/off, threads and their split as knobs; problems
// with an epilogue add the knob `epilogue` (fused into the tile store, or a separate pass).
std::unique_ptr<Template> make_cpu_gemm_template(const DeviceInfo& device);

// "cpu.swiglu.blocked": SwiGLU on the same driver and micro-kernels, the GEMM blocking knobs
// plus `fusion` (fused: gate and up share each packed x block, silu(g) * u in the store;
// unfused: two GEMMs into a 2 * m * n workspace, then an elementwise pass).
std::unique_ptr<Template> make_cpu_swiglu_template(const DeviceInfo& device);

// "cpu.gemm.openblas": cblas_sgemm with the thread count as its only knob (f32 only: Debian's
// OpenBLAS does not export cblas_sbgemm).
std::unique_ptr<Template> make_openblas_gemm_template(const DeviceInfo& device);

// How long oneDNN's OpenMP workers spin after a call: libgomp's default GOMP_SPINCOUNT of 300000
// pauses when OMP_WAIT_POLICY is unset. An own GEMM started right after a oneDNN call ran 1.76x
// slower (20.4 vs 11.6 ms, 64 x 6144 x 4096, 2 threads), 1.5x after 2 ms, 1.3x after 5 ms, at
// its own speed from 10 ms on (bench_threads, epyc-2c). TemplateInfo::settle_s of the
// oneDNN-backed template.
inline constexpr double kOnednnSettleSeconds = 0.02;

// "cpu.gemm.onednn": oneDNN's matmul primitive for f32 and bf16 (bf16 A/B, f32 C; AMX where
// the CPU has it), built once per kernel; knob `threads` (OpenMP threads, 1..cores).
std::unique_ptr<Template> make_onednn_gemm_template(const DeviceInfo& device);

}  // namespace tune
