#include "args.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace bench {

namespace {

std::string join(const std::vector<std::string> &items, const std::string &separator) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) out += (i == 0 ? "" : separator) + items[i];
    return out;
}

}  // namespace

Args::Args(const std::vector<std::string> &args, const std::vector<std::string> &allowed,
           const std::vector<std::string> &flags) {
    const auto contains = [](const std::vector<std::string> &names, const std::string &name) {
        return std::find(names.begin(), names.end(), name) != names.end();
    };
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string &arg = args[i];
        if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) throw UsageError("unexpected argument '" + arg + "'");
        std::string name = arg.substr(2), value;
        const size_t eq = name.find('=');
        if (eq != std::string::npos) name.resize(eq);
        const bool is_flag = contains(flags, name);
        if (!is_flag && !contains(allowed, name)) {
            std::vector<std::string> known = allowed;
            known.insert(known.end(), flags.begin(), flags.end());
            throw UsageError("unknown option '--" + name + "'" +
                             (known.empty() ? std::string(" (this subcommand takes no options)")
                                            : "; known options: --" + join(known, ", --")));
        }
        if (is_flag) {
            if (eq != std::string::npos) throw UsageError("option '--" + name + "' takes no value");
        } else if (eq != std::string::npos) {
            value = arg.substr(2 + eq + 1);
        } else {
            if (i + 1 >= args.size()) throw UsageError("option '--" + name + "' needs a value");
            value = args[++i];
        }
        if (has(name)) throw UsageError("option '--" + name + "' given twice");
        values_[name] = value;
    }
}

std::string Args::get(const std::string &name, const std::string &fallback) const {
    const auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
}

int64_t Args::get_int(const std::string &name, int64_t fallback, int64_t min, int64_t max) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    const std::string &text = it->second;
    char *end = nullptr;
    errno = 0;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE)
        throw UsageError("option '--" + name + "': '" + text + "' is not an integer");
    if (value < min || value > max)
        throw UsageError("option '--" + name + "': " + text + " is outside [" + std::to_string(min) + ", " +
                         std::to_string(max) + "]");
    return value;
}

std::string Args::get_choice(const std::string &name, const std::string &fallback,
                             const std::vector<std::string> &choices) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    if (std::find(choices.begin(), choices.end(), it->second) == choices.end())
        throw UsageError("option '--" + name + "': '" + it->second + "' is not one of " + join(choices, ", "));
    return it->second;
}

}  // namespace bench
