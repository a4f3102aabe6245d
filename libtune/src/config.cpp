#include "tune/config.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "tune/error.hpp"

namespace tune {
namespace {

bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    });
}

bool valid_label(std::string_view label) {
    if (label.empty() || label.size() > 64) return false;
    // A label that reads as a number would print like the integer and collide with it.
    std::int64_t number = 0;
    auto [ptr, ec] = std::from_chars(label.data(), label.data() + label.size(), number);
    if (ec == std::errc() && ptr == label.data() + label.size()) return false;
    return std::all_of(label.begin(), label.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
               c == '.' || c == '-';
    });
}

}  // namespace

std::string to_string(const KnobValue& v) {
    if (auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
    return std::get<std::string>(v);
}

std::uint64_t fnv1a64(std::string_view bytes) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : bytes) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

Config::Config(std::initializer_list<std::pair<std::string, KnobValue>> values) {
    for (const auto& [name, value] : values) set(name, value);
}

Config& Config::set(std::string_view name, KnobValue value) {
    if (!valid_name(name))
        throw Error("config: invalid knob name '" + std::string(name) + "' (lower-case letters, digits, '_', at most 64)");
    if (auto* s = std::get_if<std::string>(&value); s && !valid_label(*s))
        throw Error("config: knob '" + std::string(name) + "' has an invalid label '" + *s +
                    "' (letters, digits, '_', '.', '-'; not a number)");
    auto it = std::lower_bound(values_.begin(), values_.end(), name,
                               [](const auto& entry, std::string_view n) { return entry.first < n; });
    if (it != values_.end() && it->first == name)
        it->second = std::move(value);
    else
        values_.emplace(it, std::string(name), std::move(value));
    return *this;
}

const KnobValue* Config::find(std::string_view name) const {
    auto it = std::lower_bound(values_.begin(), values_.end(), name,
                               [](const auto& entry, std::string_view n) { return entry.first < n; });
    return it != values_.end() && it->first == name ? &it->second : nullptr;
}

bool Config::has(std::string_view name) const { return find(name) != nullptr; }

std::int64_t Config::get_int(std::string_view name) const {
    const KnobValue* v = find(name);
    if (!v) throw Error("config: missing knob '" + std::string(name) + "'");
    const auto* i = std::get_if<std::int64_t>(v);
    if (!i) throw Error("config: knob '" + std::string(name) + "' is not an integer");
    return *i;
}

const std::string& Config::get_str(std::string_view name) const {
    const KnobValue* v = find(name);
    if (!v) throw Error("config: missing knob '" + std::string(name) + "'");
    const auto* s = std::get_if<std::string>(v);
    if (!s) throw Error("config: knob '" + std::string(name) + "' is not a label");
    return *s;
}

std::string Config::text() const {
    std::string out;
    for (const auto& [name, value] : values_) {
        if (!out.empty()) out += ' ';
        out += name;
        out += '=';
        out += to_string(value);
    }
    return out;
}

Config Config::parse(std::string_view text) {
    Config c;
    std::size_t pos = 0;
    while (pos < text.size()) {
        if (text[pos] == ' ' || text[pos] == ',') {
            ++pos;
            continue;
        }
        auto end = text.find_first_of(" ,", pos);
        if (end == std::string_view::npos) end = text.size();
        auto word = text.substr(pos, end - pos);
        auto eq = word.find('=');
        require(eq != std::string_view::npos && eq > 0 && eq + 1 < word.size(),
                "config text: expected name=value, got '" + std::string(word) + "'");
        auto name = word.substr(0, eq), value = word.substr(eq + 1);
        require(!c.has(name), "config text: knob '" + std::string(name) + "' given twice");
        std::int64_t number = 0;
        auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
        if (ec == std::errc() && ptr == value.data() + value.size())
            c.set(name, number);
        else
            c.set(name, std::string(value));
        pos = end;
    }
    return c;
}

std::uint64_t Config::hash() const { return fnv1a64(text()); }

std::string Config::hash_hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash()));
    return buf;
}

void to_json(nlohmann::json& j, const Config& c) {
    j = nlohmann::json::object();
    for (const auto& [name, value] : c.values()) {
        if (auto* i = std::get_if<std::int64_t>(&value))
            j[name] = *i;
        else
            j[name] = std::get<std::string>(value);
    }
}

void from_json(const nlohmann::json& j, Config& c) {
    require(j.is_object(), "config JSON: expected an object of knob values");
    Config out;
    for (const auto& [name, value] : j.items()) {
        if (value.is_number_integer())
            out.set(name, value.get<std::int64_t>());
        else if (value.is_string())
            out.set(name, value.get<std::string>());
        else if (value.is_boolean())
            out.set(name, std::int64_t{value.get<bool>() ? 1 : 0});
        else
            throw Error("config JSON: knob '" + name + "' must be an integer or a string, got " +
                        std::string(value.type_name()));
    }
    c = std::move(out);
}

}  // namespace tune
