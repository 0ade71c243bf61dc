// Command-line options of one subcommand: "--name value" or "--name=value", checked against a known list.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

// Bad command line: main prints it and exits with status 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Args {
  public:
    // Parses args; every name must be one of `allowed` (options that take a value) or `flags` (options that
    // take none, given as a bare "--name"), all written without the leading "--".
    Args(const std::vector<std::string> &args, const std::vector<std::string> &allowed,
         const std::vector<std::string> &flags = {});

    // Whether the option or flag was given.
    bool has(const std::string &name) const { return values_.count(name) != 0; }
    std::string get(const std::string &name, const std::string &fallback) const;
    // The option as an integer in [min, max], or fallback when absent.
    int64_t get_int(const std::string &name, int64_t fallback, int64_t min, int64_t max) const;
    // The option as one of `choices`, or fallback when absent.
    std::string get_choice(const std::string &name, const std::string &fallback,
                           const std::vector<std::string> &choices) const;

  private:
    std::map<std::string, std::string> values_;
};

}  // namespace bench
