// Plain aligned text tables, printed row by row as results arrive.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace bench {

enum class Align { Left, Right };

struct Column {
    std::string header;
    int width;  // minimum width; the header's length if larger
    Align align;
};

class Table {
  public:
    explicit Table(std::vector<Column> columns, std::FILE *out = stdout);

    void print_header() const;
    // One cell per column; a cell wider than its column pushes the rest of that row right.
    void print_row(const std::vector<std::string> &cells) const;

  private:
    std::vector<Column> columns_;
    std::FILE *out_;
};

// Number formatting for table cells.
std::string fixed(double value, int decimals);
std::string shape_text(int64_t rows, int64_t cols);

}  // namespace bench
