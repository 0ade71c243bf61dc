#include "table.h"

#include <algorithm>

namespace bench {

Table::Table(std::vector<Column> columns, std::FILE *out) : columns_(std::move(columns)), out_(out) {
    for (Column &c : columns_) c.width = std::max(c.width, static_cast<int>(c.header.size()));
}

void Table::print_header() const {
    std::vector<std::string> headers;
    for (const Column &c : columns_) headers.push_back(c.header);
    print_row(headers);
}

void Table::print_row(const std::vector<std::string> &cells) const {
    std::string line;
    for (size_t i = 0; i < columns_.size(); ++i) {
        const Column &c = columns_[i];
        const std::string cell = i < cells.size() ? cells[i] : "";
        const std::string pad(std::max<size_t>(c.width, cell.size()) - cell.size(), ' ');
        if (i > 0) line += "  ";
        line += c.align == Align::Left ? cell + pad : pad + cell;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
}

std::string fixed(double value, int decimals) {
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return text;
}

std::string shape_text(int64_t rows, int64_t cols) { return std::to_string(rows) + "x" + std::to_string(cols); }

}  // namespace bench
