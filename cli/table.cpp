#include <algorithm>
#include <cstdio>

#include "cli.hpp"

namespace tune::cli {

std::string Table::str() const {
    std::vector<std::size_t> width;
    for (const auto& row : rows_) {
        width.resize(std::max(width.size(), row.size()), 0);
        for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    std::string out;
    for (std::size_t r = 0; r < rows_.size(); ++r) {
        for (std::size_t i = 0; i < rows_[r].size(); ++i) {
            out += rows_[r][i];
            if (i + 1 < rows_[r].size()) out += std::string(width[i] - rows_[r][i].size() + 2, ' ');
        }
        out += '\n';
        if (r == 0) {
            std::size_t total = 0;
            for (auto w : width) total += w + 2;
            out += std::string(total > 2 ? total - 2 : total, '-') + '\n';
        }
    }
    return out;
}

std::string format_seconds(double s) {
    char buf[32];
    if (s >= 1)
        std::snprintf(buf, sizeof buf, "%.3f s", s);
    else if (s >= 1e-3)
        std::snprintf(buf, sizeof buf, "%.3f ms", s * 1e3);
    else
        std::snprintf(buf, sizeof buf, "%.2f us", s * 1e6);
    return buf;
}

std::string format_fixed(double v, int digits) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
    return buf;
}

}  // namespace tune::cli
