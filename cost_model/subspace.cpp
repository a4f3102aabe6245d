#include "tune/cost_model/subspace.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <sstream>
#include <unordered_set>

#include "tune/error.hpp"

namespace tune::cost_model {
namespace {

// "a,b,c" -> the knob's values with those texts, in the knob's own order.
std::vector<KnobValue> pick_values(const Knob& k, std::string_view list) {
    std::set<std::string> wanted;
    for (std::size_t at = 0; at <= list.size();) {
        std::size_t comma = std::min(list.find(',', at), list.size());
        std::string item(list.substr(at, comma - at));
        require(!item.empty(), "restrict: knob '" + k.name + "' has an empty value in '" + std::string(list) + "'");
        wanted.insert(item);
        at = comma + 1;
    }
    std::vector<KnobValue> kept;
    for (const auto& v : k.values)
        if (wanted.erase(to_string(v))) kept.push_back(v);
    require(wanted.empty(), "restrict: knob '" + k.name + "' has no value '" + (wanted.empty() ? "" : *wanted.begin()) + "'");
    return kept;
}

}  // namespace

std::shared_ptr<Space> restrict_space(const Space& full, std::string_view only) {
    std::map<std::string, std::vector<KnobValue>> keep;
    std::istringstream words{std::string(only)};
    for (std::string word; words >> word;) {
        auto eq = word.find('=');
        require(eq != std::string::npos && eq > 0, "restrict: expected knob=v1,v2,... but got '" + word + "'");
        std::string name = word.substr(0, eq);
        const Knob* k = full.knob(name);
        require(k != nullptr, "restrict: unknown knob '" + name + "'");
        require(!keep.contains(name), "restrict: knob '" + name + "' listed twice");
        keep[name] = pick_values(*k, std::string_view(word).substr(eq + 1));
    }
    auto out = std::make_shared<Space>();
    for (Knob k : full.knobs()) {
        if (auto it = keep.find(k.name); it != keep.end()) {
            k.values = it->second;
            if (k.index_of(k.default_value) < 0) k.default_value = k.values.front();
        }
        out->add(std::move(k));
    }
    for (const auto& c : full.constraints()) out->require(c.name, c.holds);
    return out;
}

std::shared_ptr<Space> recorded_space(const std::vector<Config>& recorded, const Config& preferred) {
    require(!recorded.empty(), "recorded space: no configs");
    std::map<std::string, std::set<KnobValue>> values;
    for (const auto& c : recorded) {
        require(c.size() == recorded.front().size(), "recorded space: configs name different knobs");
        for (const auto& [name, v] : c.values()) values[name].insert(v);
    }
    std::unordered_set<std::uint64_t> hashes;
    for (const auto& c : recorded) hashes.insert(c.hash());
    const Config& def = hashes.contains(preferred.hash()) ? preferred : recorded.front();
    auto out = std::make_shared<Space>();
    for (const auto& [name, set] : values) {
        const KnobValue* d = def.find(name);
        require(d != nullptr, "recorded space: a config lacks knob '" + name + "'");
        Knob k;
        k.name = name;
        k.kind = std::holds_alternative<std::string>(*d) ? KnobKind::categorical : KnobKind::int_set;
        for (const auto& v : set) {
            require(v.index() == d->index(), "recorded space: knob '" + name + "' mixes numbers and labels");
            k.values.push_back(v);
        }
        k.default_value = *d;
        out->add(std::move(k));
    }
    out->require("recorded", [hashes = std::move(hashes)](const Config& c) { return hashes.contains(c.hash()); });
    return out;
}

}  // namespace tune::cost_model
