#include <cstdio>
#include "tune/measurer.hpp"
#include "tune/kernel.hpp"
#include "tune/measurement.hpp"
using namespace tune;
int main(int argc, char** argv) {
    DeviceInfo device = detect_cpu();
    TemplateRegistry registry = builtin_registry(device);
    const Template* t = registry.find("cpu.gemm.onednn");
    MeasureOptions o;  // defaults
    o.isolate = true;
    for (int round = 0; round < 4; ++round) for (int m : {16, 64, 512}) {
        Problem p = make_gemm(m, 512, 512);
        Config c = t->space(p)->default_config();
        c.set("threads", std::int64_t{2});
        double iso_fresh, local, iso_late;
        { Measurer w(device, o); iso_fresh = w.measure(p, *t, c).stats.median_s; }
        { MeasureOptions l = o; l.isolate = false; Measurer w(device, l); local = w.measure(p, *t, c).stats.median_s; }
        { Measurer w(device, o); auto r = w.measure(p, *t, c); iso_late = r.stats.median_s; if (r.status != Status::ok) std::printf("late: %s\n", r.reason.c_str()); }
        std::printf("m=%d  fresh worker %.2f us  in-process %.2f us  worker after in-process %.2f us\n", m, iso_fresh*1e6, local*1e6, iso_late*1e6);
    }
}
