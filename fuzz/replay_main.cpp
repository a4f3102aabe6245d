// A stand-in for libFuzzer's driver when the compiler is not clang: runs the target on every
// file given (or in the folders given), then on RUNS byte-level mutations of them
// (LIBTUNE_FUZZ_RUNS, default 2000). Any crash or abort fails the run.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
    std::vector<std::string> inputs;
    auto load = [&](const std::filesystem::path& p) {
        std::ifstream in(p, std::ios::binary);
        inputs.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    };
    for (int i = 1; i < argc; ++i) {
        std::filesystem::path p = argv[i];
        if (std::filesystem::is_directory(p)) {
            for (const auto& e : std::filesystem::directory_iterator(p))
                if (e.is_regular_file()) load(e.path());
        } else {
            load(p);
        }
    }
    if (inputs.empty()) inputs.emplace_back();
    for (const auto& s : inputs) LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    const char* env = std::getenv("LIBTUNE_FUZZ_RUNS");
    long runs = env ? std::atol(env) : 2000;
    std::mt19937_64 rng(1);
    const std::string dictionary = "{}[]\":,=-0123456789.eE \nnulltruefalse";
    for (long r = 0; r < runs; ++r) {
        std::string s = inputs[rng() % inputs.size()];
        int edits = 1 + static_cast<int>(rng() % 8);
        for (int e = 0; e < edits; ++e) {
            std::size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
            switch (rng() % 4) {
                case 0: if (pos < s.size()) s[pos] = static_cast<char>(rng()); break;
                case 1: s.insert(pos, 1, dictionary[rng() % dictionary.size()]); break;
                case 2: if (pos < s.size()) s.erase(pos, 1 + rng() % 4); break;
                case 3: if (!s.empty()) s.insert(pos, s.substr(rng() % s.size(), 1 + rng() % 16)); break;
            }
        }
        LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
    }
    std::printf("%zu inputs and %ld mutations ran without a crash\n", inputs.size(), runs);
    return 0;
}
