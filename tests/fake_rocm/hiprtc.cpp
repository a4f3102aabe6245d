// Stand-in hiprtc for the loader's tests: every hiprtc symbol libtune loads. Its error string
// names the library it was built into (FAKE_HIPRTC_IN), so a test sees which one a call
// reached; every other call fails with HIPRTC_ERROR_INTERNAL_ERROR.
extern "C" {

const char* hiprtcGetErrorString(int) { return "fake hiprtc in " FAKE_HIPRTC_IN; }

#define FAKE_FAILS(name) \
    int name() { return 11; }
FAKE_FAILS(hiprtcCreateProgram) FAKE_FAILS(hiprtcDestroyProgram) FAKE_FAILS(hiprtcCompileProgram)
FAKE_FAILS(hiprtcGetProgramLogSize) FAKE_FAILS(hiprtcGetProgramLog) FAKE_FAILS(hiprtcGetCodeSize)
FAKE_FAILS(hiprtcGetCode) FAKE_FAILS(hiprtcAddNameExpression) FAKE_FAILS(hiprtcGetLoweredName)

}  // extern "C"
