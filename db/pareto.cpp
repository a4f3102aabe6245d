// The Pareto front of (time, workspace) (database.hpp).
#include <algorithm>

#include "rows.hpp"
#include "tune/db/database.hpp"

namespace tune {

std::vector<std::size_t> pareto_front(const std::vector<const Measurement*>& rows) {
    std::vector<std::size_t> order(rows.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return db_rules::faster(*rows[a], *rows[b]); });
    // Scanning by time, a row is on the front when it needs less workspace than every faster row.
    std::vector<std::size_t> front;
    for (std::size_t i : order) {
        const Measurement& m = *rows[i];
        const Measurement* last = front.empty() ? nullptr : rows[front.back()];
        if (!last || m.workspace_bytes < last->workspace_bytes ||
            (m.workspace_bytes == last->workspace_bytes && ranking_time(m.stats) == ranking_time(last->stats)))
            front.push_back(i);
    }
    return front;
}

}  // namespace tune
