// cuda.attention.flash_backward: the attention gradients of attention_backward.h (shared with
// HIP; f32 scalar arithmetic) as an NVRTC program. The host instantiates one per config.
#include "attention_backward.h"
