// The fp64 attention reference behind Workload: outputs and per-element error scales.
#pragma once

#include <vector>

#include "tune/problem.hpp"

namespace tune::detail {

// q, k, v: the operands as stored (layouts in make_attention). Fills `reference` with O then
// LSE, and `scale` with how far each may drift under any correct f32 evaluation order, in units
// of the problem's tolerance (see Workload::error).
void attention_reference(const AttentionDims& a, const std::vector<double>& q, const std::vector<double>& k,
                         const std::vector<double>& v, std::vector<double>& reference, std::vector<double>& scale);

// The gradients dQ, dK, dV (in that order) given the operands, the forward's O and LSE as the
// kernel sees them, and dO; scales as above.
void attention_backward_reference(const AttentionDims& a, const std::vector<double>& q, const std::vector<double>& k,
                                  const std::vector<double>& v, const std::vector<double>& o,
                                  const std::vector<double>& lse, const std::vector<double>& dout,
                                  std::vector<double>& reference, std::vector<double>& scale);

}  // namespace tune::detail
