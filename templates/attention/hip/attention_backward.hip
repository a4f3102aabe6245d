// hip.attention.flash_backward: the attention gradients of attention_backward.h (shared with
// CUDA; f32 scalar arithmetic) as a hiprtc program. The host instantiates one per config.
#include "attention_backward.h"
