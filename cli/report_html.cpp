// Rendering of the tuning report: small SVG charts (line, grouped bars, scatter) written as
// text, inside one HTML page with inline CSS. Every chart states its axes and units.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "report.hpp"

namespace tune::cli {
namespace {

std::string escape(const std::string& text) {
    std::string out;
    for (char c : text) {
        switch (c) {
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '&': out += "&amp;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

std::string num(double v, int digits = 3) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    return buf;
}

const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"};

// Linear or log10 axis from data range to pixels, with readable ticks.
struct Axis {
    double lo, hi;
    bool log;
    double px_lo, px_hi;

    static Axis fit(double lo, double hi, bool log, double px_lo, double px_hi) {
        if (log) lo = std::log10(lo), hi = std::log10(hi);
        if (!(hi > lo)) lo -= 0.5, hi += 0.5;
        double pad = (hi - lo) * 0.05;
        return {lo - pad, hi + pad, log, px_lo, px_hi};
    }
    double operator()(double v) const {
        double t = ((log ? std::log10(v) : v) - lo) / (hi - lo);
        return px_lo + t * (px_hi - px_lo);
    }
    std::vector<double> ticks() const {
        std::vector<double> out;
        if (log) {
            for (double e = std::ceil(lo); e <= hi; e += 1) out.push_back(std::pow(10, e));
            if (out.size() >= 2) return out;
            out.clear();
        }
        double a = log ? std::pow(10, lo) : lo, b = log ? std::pow(10, hi) : hi;
        double raw = (b - a) / 5, mag = std::pow(10, std::floor(std::log10(raw)));
        double step = raw / mag < 2 ? mag : raw / mag < 5 ? 2 * mag : 5 * mag;
        for (double v = std::ceil(a / step) * step; v <= b; v += step) out.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
        return out;
    }
};

// One chart: frame, ticks and axis labels; marks are appended to `body`.
class Chart {
public:
    static constexpr double W = 560, H = 300, L = 64, R = 16, T = 28, B = 46;
    Chart(std::string id, std::string title, Axis x, Axis y, std::string x_label, std::string y_label)
        : id_(std::move(id)), title_(std::move(title)), x(x), y(y), x_label_(std::move(x_label)),
          y_label_(std::move(y_label)) {}

    std::string svg() const {
        std::string s = "<svg id=\"" + id_ + "\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                        num(W) + "\" height=\"" + num(H) + "\" viewBox=\"0 0 " + num(W) + " " + num(H) + "\" role=\"img\">";
        s += "<title>" + escape(title_) + "</title>";
        s += "<text x=\"" + num(W / 2) + "\" y=\"16\" class=\"t\">" + escape(title_) + "</text>";
        s += "<rect x=\"" + num(L) + "\" y=\"" + num(T) + "\" width=\"" + num(W - L - R) + "\" height=\"" +
             num(H - T - B) + "\" class=\"frame\"/>";
        for (double v : x.ticks())
            s += "<text x=\"" + num(x(v), 5) + "\" y=\"" + num(H - B + 14) + "\" class=\"xt\">" + num(v) + "</text>";
        for (double v : y.ticks())
            s += "<line x1=\"" + num(L) + "\" x2=\"" + num(W - R) + "\" y1=\"" + num(y(v), 5) + "\" y2=\"" +
                 num(y(v), 5) + "\" class=\"grid\"/><text x=\"" + num(L - 4) + "\" y=\"" + num(y(v) + 4, 5) +
                 "\" class=\"yt\">" + num(v) + "</text>";
        s += "<text x=\"" + num((L + W - R) / 2) + "\" y=\"" + num(H - 8) + "\" class=\"t\">" + escape(x_label_) + "</text>";
        s += "<text transform=\"translate(14," + num((T + H - B) / 2) + ") rotate(-90)\" class=\"t\">" +
             escape(y_label_) + "</text>";
        return s + body + "</svg>";
    }

    std::string id_, title_;
    Axis x, y;
    std::string x_label_, y_label_, body;
};

std::string dot(double cx, double cy, const char* color, const std::string& tip, double r = 3) {
    return "<circle cx=\"" + num(cx, 5) + "\" cy=\"" + num(cy, 5) + "\" r=\"" + num(r) + "\" fill=\"" + color +
           "\"><title>" + escape(tip) + "</title></circle>";
}

std::string polyline(const std::vector<std::pair<double, double>>& px, const char* color, const char* cls) {
    std::string pts;
    for (auto [a, b] : px) pts += num(a, 5) + "," + num(b, 5) + " ";
    return "<polyline points=\"" + pts + "\" fill=\"none\" stroke=\"" + color + "\" class=\"" + cls + "\"/>";
}

std::string no_data(const std::string& why) { return "<p class=\"nodata\">No data: " + escape(why) + "</p>"; }

std::string progress_chart(const ReportData::Progress& p, std::size_t index) {
    double top = 0;
    for (double g : p.trial_gflops) top = std::max(top, g);
    Chart c("progress-" + std::to_string(index), p.shape, Axis::fit(1, double(p.trial_gflops.size()), false, Chart::L, Chart::W - Chart::R),
            Axis::fit(0, top > 0 ? top : 1, false, Chart::H - Chart::B, Chart::T), "trial", "GFLOP/s");
    std::vector<std::pair<double, double>> steps;
    double best = 0;
    for (std::size_t i = 0; i < p.trial_gflops.size(); ++i) {
        double g = p.trial_gflops[i], xi = c.x(double(i + 1));
        c.body += g > 0 ? dot(xi, c.y(g), "#9aa", "trial " + std::to_string(i + 1) + ": " + num(g) + " GFLOP/s")
                        : dot(xi, c.y(0), "#d62728", "trial " + std::to_string(i + 1) + ": failed", 2);
        if (!steps.empty()) steps.emplace_back(xi, c.y(best));
        best = std::max(best, g);
        steps.emplace_back(xi, c.y(best));
    }
    c.body += polyline(steps, kColors[0], "line");
    return c.svg();
}

std::string speedup_chart(const std::vector<ReportData::Speedup>& rows) {
    std::vector<std::string> names;  // baselines, in first-seen order
    double top = 1;
    for (const auto& r : rows)
        for (const auto& [name, v] : r.over) {
            if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
            top = std::max(top, v);
        }
    const double row_h = 14.0 * double(std::max<std::size_t>(names.size(), 1)) + 10;
    const double left = 330, width = 760, height = 40 + row_h * double(rows.size()) + 20 * double(names.size());
    Axis x = Axis::fit(0, top, false, left, width - 20);
    x.lo = 0;
    std::string s = "<svg id=\"speedup\" class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) +
                    "\" height=\"" + num(height, 5) + "\" role=\"img\"><title>speedup of the tuned pick per shape</title>";
    const double bottom = 30 + row_h * double(rows.size());
    for (double v : x.ticks())
        s += "<line x1=\"" + num(x(v), 5) + "\" x2=\"" + num(x(v), 5) + "\" y1=\"24\" y2=\"" + num(bottom, 5) +
             "\" class=\"grid\"/><text x=\"" + num(x(v), 5) + "\" y=\"16\" class=\"xt\">" + num(v) + "x</text>";
    s += "<line x1=\"" + num(x(1), 5) + "\" x2=\"" + num(x(1), 5) + "\" y1=\"24\" y2=\"" + num(bottom, 5) +
         "\" class=\"one\"/>";
    for (std::size_t r = 0; r < rows.size(); ++r) {
        double y0 = 30 + row_h * double(r);
        s += "<text x=\"" + num(left - 6) + "\" y=\"" + num(y0 + row_h / 2, 5) + "\" class=\"yt\">" +
             escape(rows[r].shape) + "</text>";
        for (const auto& [name, v] : rows[r].over) {
            auto i = std::size_t(std::find(names.begin(), names.end(), name) - names.begin());
            double yb = y0 + 14.0 * double(i);
            s += "<rect x=\"" + num(left) + "\" y=\"" + num(yb, 5) + "\" width=\"" + num(std::max(1.0, x(v) - left), 5) +
                 "\" height=\"12\" fill=\"" + kColors[i % 6] + "\"><title>" + escape(rows[r].shape + " vs " + name) +
                 ": " + num(v) + "x</title></rect><text x=\"" + num(x(v) + 3, 5) + "\" y=\"" + num(yb + 10, 5) +
                 "\" class=\"val\">" + num(v) + "x</text>";
        }
    }
    for (std::size_t i = 0; i < names.size(); ++i) {
        double yl = bottom + 16 + 20 * double(i);
        s += "<rect x=\"" + num(left) + "\" y=\"" + num(yl - 10, 5) + "\" width=\"12\" height=\"12\" fill=\"" +
             kColors[i % 6] + "\"/><text x=\"" + num(left + 18) + "\" y=\"" + num(yl, 5) + "\" class=\"lt\">vs " +
             escape(names[i]) + "</text>";
    }
    return s + "</svg>";
}

// Scatter of (x, y) points, both log scale, x drawn at no less than x_floor (0 bytes of
// workspace sits at 1); `line` points (sorted) are joined and drawn larger.
std::string scatter(const std::string& id, const std::string& title, const std::vector<std::pair<double, double>>& pts,
                    const std::vector<std::size_t>& line, const std::string& x_label, const std::string& y_label,
                    bool diagonal, double x_floor) {
    double x_lo = std::numeric_limits<double>::max(), x_hi = 0, y_lo = x_lo, y_hi = 0;
    for (auto [a, b] : pts) {
        x_lo = std::min(x_lo, std::max(a, x_floor)), x_hi = std::max(x_hi, std::max(a, x_floor));
        y_lo = std::min(y_lo, b), y_hi = std::max(y_hi, b);
    }
    if (diagonal) x_lo = y_lo = std::min(x_lo, y_lo), x_hi = y_hi = std::max(x_hi, y_hi);
    Chart c(id, title, Axis::fit(x_lo, x_hi, true, Chart::L, Chart::W - Chart::R),
            Axis::fit(y_lo, y_hi, true, Chart::H - Chart::B, Chart::T), x_label, y_label);
    if (diagonal) c.body += polyline({{c.x(x_lo), c.y(x_lo)}, {c.x(x_hi), c.y(x_hi)}}, "#888", "diag");
    for (auto [a, b] : pts) c.body += dot(c.x(std::max(a, x_floor)), c.y(b), "#9aa", num(a) + ", " + num(b));
    std::vector<std::pair<double, double>> px;
    for (std::size_t i : line) {
        px.emplace_back(c.x(std::max(pts[i].first, x_floor)), c.y(pts[i].second));
        c.body += dot(px.back().first, px.back().second, kColors[1], num(pts[i].first) + ", " + num(pts[i].second), 4);
    }
    if (px.size() > 1) c.body += polyline(px, kColors[1], "line");
    return c.svg();
}

constexpr const char* kStyle = R"(body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plot{background:#fff;border:1px solid #e5e5e5}
.plot text{font:11px sans-serif;fill:#333}.plot .t{text-anchor:middle;font-size:12px}
.plot .xt{text-anchor:middle}.plot .yt{text-anchor:end}.frame{fill:none;stroke:#bbb}
.grid{stroke:#eee}.one{stroke:#444;stroke-dasharray:4 3}.line{stroke-width:2}.diag{stroke-dasharray:4 3}
.nodata{color:#777;font-style:italic}.facts{color:#555}
)";

}  // namespace

std::vector<std::size_t> pareto_front(const std::vector<std::pair<double, double>>& points) {
    std::vector<std::size_t> order(points.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return points[a] < points[b]; });
    std::vector<std::size_t> front;
    double best_second = std::numeric_limits<double>::infinity();
    for (std::size_t i : order)
        if (points[i].second < best_second) {
            front.push_back(i);
            best_second = points[i].second;
        }
    return front;
}

std::string render_html(const ReportData& d) {
    std::string h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>libtune report: " +
                    escape(d.store) + "</title><style>" + kStyle + "</style></head><body>\n";
    h += "<h1>libtune tuning report: " + escape(d.store) + "</h1><p class=\"facts\">";
    for (const auto& f : d.facts) h += escape(f) + "<br>";
    h += "generated " + escape(d.generated) + "</p>\n";

    h += "<h2>Best so far vs trials</h2><p>Each dot is one measured candidate in the order it was measured "
         "(red: failed or wrong result); the line is the best GFLOP/s found so far.</p><div class=\"plots\">";
    for (std::size_t i = 0; i < d.progress.size(); ++i) h += progress_chart(d.progress[i], i);
    h += "</div>";
    if (d.progress.empty()) h += no_data("the store holds no measurements");

    h += "\n<h2>Speedup per shape vs baselines</h2><p>Baseline median time / best median time, all measured in "
         "this store (right of the dashed line: the tuned pick is faster).</p>";
    h += d.speedups.empty() ? no_data("no shape has both a best pick and a baseline measurement") : speedup_chart(d.speedups);

    h += "\n<h2>Attention: time vs workspace (Pareto front)</h2>";
    if (d.attention.empty()) h += no_data("the store holds no successful attention measurements");
    h += "<div class=\"plots\">";
    for (std::size_t i = 0; i < d.attention.size(); ++i)
        h += scatter("pareto-" + std::to_string(i), d.attention[i].shape, d.attention[i].points,
                     pareto_front(d.attention[i].points), "workspace bytes (0 drawn at 1)", "median seconds", false, 1.0);
    h += "</div>";

    h += "\n<h2>Cost model: predicted vs measured</h2>";
    if (d.predicted_vs_measured.empty())
        h += no_data("the store holds no cost-model predictions");
    else
        h += scatter("cost-model", "predicted vs measured", d.predicted_vs_measured, {}, "predicted seconds",
                     "measured seconds", true, 0.0);
    return h + "\n</body></html>\n";
}

}  // namespace tune::cli
