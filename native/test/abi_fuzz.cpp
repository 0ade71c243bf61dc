// The C ABI fuzzer (`./moe4j fuzz abi`): calls every CPU entry point of moe4j.h with valid arguments mutated one or a
// few fields at a time (dtype, rank, shape, strides, null and misaligned pointers, buffers shorter than their
// descriptors claim, overlapping outputs, out-of-range index tables, bad scalars) and checks the ABI's promises:
//  - a call the ABI must refuse is refused, a valid call succeeds, and nothing else is returned than the documented
//    statuses (MOE4J_ERROR_INTERNAL is a finding);
//  - a refused call records a message that starts with the function's name and names the argument that is wrong
//    (the mutated one where a single argument is wrong on its own, some documented argument otherwise), and every
//    buffer it was given (outputs filled with a canary) is byte for byte unchanged; an accepted call leaves "" and
//    never writes its inputs;
//  - no crash and no sanitizer report: every buffer is exactly as long as its descriptor claims (it ends where its
//    allocation ends), so under AddressSanitizer any read or write past it aborts the run.
// Each iteration draws from its own generator (seed, iteration), so a finding is replayed by --seed S --from I
// --iterations I+1. Exits 1 on any finding (the sanitizers abort the process themselves, after the death callback
// prints the iteration). Usage: moe4j_abi_fuzz [--iterations N] [--seed S] [--from I] [--header moe4j.h] [--verbose]
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "moe4j.h"
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace {

constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
constexpr int32_t kMax32 = std::numeric_limits<int32_t>::max();
constexpr int32_t kMin32 = std::numeric_limits<int32_t>::min();
constexpr unsigned kCallTimeoutSeconds = 30;
constexpr int32_t kMaxRank = MOE4J_MAX_RANK;

// ------------------------------------------------------------------------------------------------ randomness

struct Rng {
    uint64_t state;
    explicit Rng(uint64_t seed) : state(seed) {}
    uint64_t next() {  // splitmix64
        uint64_t z = (state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform in [lo, hi].
    int64_t range(int64_t lo, int64_t hi) {
        return lo + static_cast<int64_t>(next() % (static_cast<uint64_t>(hi - lo) + 1));
    }
    bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }
    template <typename T>
    T pick(std::initializer_list<T> values) {
        return values.begin()[next() % values.size()];
    }
    float uniform(float lo, float hi) { return lo + (hi - lo) * static_cast<float>(next() >> 40) * 0x1.0p-24f; }
};

// ------------------------------------------------------------------------------------------------ what the ABI says

// Bytes per element of each moe4j_dtype, in enum order (F32, BF16, F16, E4M3, I32, I64, U8, E4M3_P32, Q8_P16); 0 for an
// unknown one. The fuzzer keeps its own model of the ABI: the library's helpers are neither exported nor to be
// trusted here.
int64_t element_size(int32_t dtype) {
    static constexpr int64_t kSizes[] = {4, 2, 2, 1, 4, 8, 1, 1, 1};
    static_assert(MOE4J_F32 == 0 && MOE4J_U8 == 6 && MOE4J_E4M3_P32 == 7 && MOE4J_Q8_P16 == 8,
                  "moe4j_dtype values changed: update kSizes");
    return dtype >= 0 && dtype < 9 ? kSizes[dtype] : 0;
}

// Weights of the FP8 GEMMs and the expert FFN: E4M3, or packed in panels (E4M3_P32).
const std::vector<int32_t> kWeights = {MOE4J_E4M3, MOE4J_E4M3_P32};

// Bytes from data to one past the last reachable element of t's first `rank` dimensions, 0 when empty, -1 when it
// does not fit in int64 or the descriptor has no extent (a bad rank, a negative shape or stride): the fuzzer's own
// arithmetic, independent of the library's.
int64_t span_bytes(const moe4j_tensor &t) {
    if (t.rank < 0 || t.rank > kMaxRank) return -1;
    for (int i = 0; i < t.rank; ++i)
        if (t.shape[i] < 0 || t.strides[i] < 0) return -1;
    unsigned __int128 last = 0;
    for (int i = 0; i < t.rank; ++i)
        if (t.shape[i] == 0) return 0;
    for (int i = 0; i < t.rank; ++i) {
        last += static_cast<unsigned __int128>(t.shape[i] - 1) * static_cast<unsigned __int128>(t.strides[i]);
        if (last > static_cast<unsigned __int128>(kMax64)) return -1;
    }
    const unsigned __int128 bytes = (last + 1) * static_cast<unsigned __int128>(element_size(t.dtype));
    return bytes > static_cast<unsigned __int128>(kMax64) ? -1 : static_cast<int64_t>(bytes);
}

enum class Layout { Strided, RowsDense, Contiguous };

bool contains(const std::vector<int32_t> &values, int32_t v) {
    return std::find(values.begin(), values.end(), v) != values.end();
}

// One tensor argument of a call: its documented rule, its descriptor, and the memory block its data points into.
struct Arg {
    std::string name;           // as in moe4j.h
    int64_t group = -1;         // the group of a weight-groups member
    bool group_scales = false;  // the scales tensor of a group (else its weights)
    std::vector<int32_t> dtypes, ranks;
    Layout layout = Layout::Strided;
    bool fp8_records = false;  // an FP8 MLA cache (U8): data and outer strides on 4-byte boundaries
    bool output = false, optional = false, present = true;
    bool hidden = false;  // not an argument of the call (the stack behind weight-group views)
    unsigned tied = 0xF;  // dimensions whose change alone makes the call inconsistent
    moe4j_tensor t{};
    int block = -1;
    int64_t avail = 0;  // bytes that really exist from t.data to the end of its block

    // What makes this descriptor wrong on its own, or "" (the checks moe4j.h documents for every tensor).
    std::string problem() const {
        if (!present) return optional ? "" : "null descriptor";
        if (t.reserved != 0) return "reserved field";
        if (!contains(ranks, t.rank)) return "rank";
        if (!contains(dtypes, t.dtype)) return "dtype";
        if (t.device != MOE4J_HOST_MEMORY) return "device";
        for (int i = 0; i < t.rank; ++i)
            if (t.shape[i] < 0 || t.strides[i] < 0) return "negative shape or stride";
        if (t.dtype == MOE4J_E4M3_P32 || t.dtype == MOE4J_Q8_P16) {  // panels of 32 or 16 rows, contiguous
            const int64_t panel_rows = t.dtype == MOE4J_E4M3_P32 ? 32 : 16;
            if (t.rank < 2 || t.shape[t.rank - 2] % panel_rows != 0) return "packed panel rows";
            int64_t expected = 1;
            for (int i = t.rank - 1; i >= 0; --i) {
                if (t.shape[i] > 1 && t.strides[i] != expected) return "packed not contiguous";
                if (__builtin_mul_overflow(expected, t.shape[i], &expected)) return "element count overflows";
            }
        }
        if (layout == Layout::RowsDense && t.strides[t.rank - 1] != 1 && t.shape[t.rank - 1] > 1)
            return "innermost stride";
        if (layout == Layout::Contiguous && span_bytes(t) > 0) {  // an empty tensor has no element out of place
            int64_t expected = 1;
            for (int i = t.rank - 1; i >= 0; --i) {
                if (t.shape[i] > 1 && t.strides[i] != expected) return "not contiguous";
                if (__builtin_mul_overflow(expected, t.shape[i], &expected)) return "not contiguous";
            }
        }
        int64_t elements = 1;
        for (int i = 0; i < t.rank; ++i)
            if (__builtin_mul_overflow(elements, t.shape[i], &elements)) return "element count overflows";
        const int64_t extent = span_bytes(t);
        if (extent < 0) return "extent overflows";
        if (extent > 0 && t.data == nullptr) return "null data";
        const auto address = reinterpret_cast<uintptr_t>(t.data);
        if (address % static_cast<uintptr_t>(element_size(t.dtype)) != 0) return "misaligned";
        if (t.size_bytes < extent) return "buffer too short";
        if (fp8_records && t.dtype == MOE4J_U8 &&
            (address % 4 != 0 || t.strides[0] % 4 != 0 || t.strides[1] % 4 != 0 || t.strides[2] % 4 != 0))
            return "FP8 records misaligned";
        return "";
    }
    std::string label() const {
        std::string s = name;
        if (group >= 0) s += "[" + std::to_string(group) + "]" + (group_scales ? ".scales" : ".weights");
        return s;
    }
};

struct Block {
    char *raw = nullptr;
    int64_t size = 0;
    std::vector<char> before;
};

// A moe4j_fp8_weight_groups argument: its members are Args of the case; the descriptor arrays are allocated with
// exactly `count` entries right before the call.
struct Groups {
    std::string name;
    std::vector<Arg *> weights, scales;
    int64_t count = 0;
    bool present = true, weights_null = false, scales_null = false;
    moe4j_fp8_weight_groups w{};
    moe4j_tensor *weight_array = nullptr, *scale_array = nullptr;
};

// A mutation of a scalar argument or of an index table's values; returns whether the call must then be refused.
struct Mutator {
    std::string name;
    std::function<bool(Rng &, std::string *)> apply;
};

// One call of one entry point: valid arguments, what may be mutated, and the call itself.
struct Case {
    const char *fn = "";
    std::vector<std::string> names;  // every documented argument name
    std::deque<Arg> args;
    std::deque<Groups> groups;
    std::vector<Block> blocks;
    std::deque<int64_t> ints;
    std::deque<float> floats;
    std::vector<Mutator> scalars, tables;
    std::vector<std::pair<Arg *, Arg *>> overlaps;  // (output, other) that must not overlap
    std::set<std::pair<Arg *, Arg *>> in_place;     // ... except as the very same view
    std::function<moe4j_status(moe4j_context *)> call;
    // A rule between arguments the descriptors' own rules miss: the names a refusal must give, empty when it holds.
    std::function<std::vector<std::vector<std::string>>()> cross;

    Case() = default;
    Case(const Case &) = delete;
    Case &operator=(const Case &) = delete;
    ~Case() {
        for (Block &b : blocks) std::free(b.raw);
        for (Groups &g : groups) {
            std::free(g.weight_array);
            std::free(g.scale_array);
        }
    }

    int new_block(int64_t bytes) {
        Block b;
        b.size = bytes;
        // malloc(0) gives a region of which every byte is out of bounds for AddressSanitizer
        b.raw = static_cast<char *>(std::malloc(static_cast<size_t>(bytes)));
        if (b.raw == nullptr) b.raw = static_cast<char *>(std::malloc(1));
        if (b.raw == nullptr) {
            std::fprintf(stderr, "fuzz abi: out of memory\n");
            std::exit(2);
        }
        blocks.push_back(std::move(b));
        return static_cast<int>(blocks.size() - 1);
    }

    // Moves a's data into a fresh block of `offset + bytes` bytes at `offset` (its first min(bytes, avail) bytes kept).
    void relocate(Arg &a, int64_t offset, int64_t bytes) {
        const int block = new_block(offset + bytes);
        char *data = blocks[block].raw + offset;
        if (a.t.data != nullptr) std::memcpy(data, a.t.data, static_cast<size_t>(std::min(bytes, a.avail)));
        a.t.data = data;
        a.block = block;
        a.avail = bytes;
    }

    const moe4j_tensor *ptr(const Arg *a) const { return a->present ? &a->t : nullptr; }
    moe4j_tensor *out(Arg *a) const { return a->present ? &a->t : nullptr; }

    const moe4j_fp8_weight_groups *ptr(Groups *g) {
        if (!g->present) return nullptr;
        const int64_t real = static_cast<int64_t>(g->weights.size());
        const int64_t entries = g->count >= 1 && g->count <= real ? g->count : real;
        std::free(g->weight_array);
        std::free(g->scale_array);
        g->weight_array = static_cast<moe4j_tensor *>(std::malloc(static_cast<size_t>(entries) * sizeof(moe4j_tensor)));
        g->scale_array = static_cast<moe4j_tensor *>(std::malloc(static_cast<size_t>(entries) * sizeof(moe4j_tensor)));
        for (int64_t i = 0; i < entries; ++i) {
            g->weight_array[i] = g->weights[i]->t;
            g->scale_array[i] = g->scales[i]->t;
        }
        g->w.count = g->count;
        g->w.weights = g->weights_null ? nullptr : g->weight_array;
        g->w.scales = g->scales_null ? nullptr : g->scale_array;
        return &g->w;
    }

    int64_t *int_arg(int64_t v) {
        ints.push_back(v);
        return &ints.back();
    }
    float *float_arg(float v) {
        floats.push_back(v);
        return &floats.back();
    }
};

// ------------------------------------------------------------------------------------------------ building tensors

uint16_t bf16_of(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    return static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}

// Element (i0, i1, ...) of a, through its descriptor.
char *element(const Arg &a, std::initializer_list<int64_t> index) {
    int64_t offset = 0, d = 0;
    for (int64_t i : index) offset += i * a.t.strides[d++];
    return static_cast<char *>(a.t.data) + offset * element_size(a.t.dtype);
}
void set_i32(const Arg &a, std::initializer_list<int64_t> index, int32_t v) { std::memcpy(element(a, index), &v, 4); }
int32_t get_i32(const Arg &a, std::initializer_list<int64_t> index) {
    int32_t v;
    std::memcpy(&v, element(a, index), 4);
    return v;
}

// Fills a's block: outputs with random canary bytes, inputs with values of their dtype (mostly finite, at times any
// bit pattern; `positive` for scales), index tables with zeros (their builders set them).
void fill(Case &c, const Arg &a, Rng &rng, bool positive = false) {
    Block &b = c.blocks[a.block];
    char *p = b.raw, *end = b.raw + b.size;
    if (a.output) {
        for (; p < end; ++p) *p = static_cast<char>(rng.next());
        return;
    }
    const bool wild = !positive && rng.chance(0.05);
    switch (a.t.dtype) {
        case MOE4J_F32:
            for (; p + 4 <= end; p += 4) {
                float v = positive ? rng.uniform(1e-3f, 0.05f) : rng.uniform(-2.0f, 2.0f);
                if (wild && rng.chance(0.1)) {
                    const uint32_t bits = static_cast<uint32_t>(rng.next());
                    std::memcpy(&v, &bits, 4);
                }
                std::memcpy(p, &v, 4);
            }
            break;
        case MOE4J_BF16:
            for (; p + 2 <= end; p += 2) {
                uint16_t v = bf16_of(rng.uniform(-2.0f, 2.0f));
                if (wild && rng.chance(0.1)) v = static_cast<uint16_t>(rng.next());
                std::memcpy(p, &v, 2);
            }
            break;
        case MOE4J_I32: std::memset(p, 0, static_cast<size_t>(b.size)); break;
        default:
            for (; p < end; ++p) *p = static_cast<char>(rng.next());
    }
}

struct TensorSpec {
    const char *name;
    std::vector<int32_t> dtypes;
    std::vector<int32_t> ranks;
    Layout layout;
    int64_t stride_multiple = 1;  // outer strides rounded up to a multiple of this
};

// A valid tensor of the given dtype and shape: row-major, at times with padded or permuted outer dimensions (within
// what its layout allows) and garbage in the unused shape and stride slots; its block is exactly its extent.
Arg &tensor(Case &c, Rng &rng, const TensorSpec &spec, int32_t dtype, std::vector<int64_t> shape, bool output = false) {
    c.args.emplace_back();
    Arg &a = c.args.back();
    a.name = spec.name;
    a.dtypes = spec.dtypes;
    a.ranks = spec.ranks;
    a.layout = spec.layout;
    a.output = output;
    a.t.dtype = dtype;
    a.t.rank = static_cast<int32_t>(shape.size());
    a.t.device = MOE4J_HOST_MEMORY;
    const int rank = a.t.rank;
    for (int i = 0; i < rank; ++i) a.t.shape[i] = shape[i];
    // Order of the dimensions in memory, innermost last; RowsDense and Contiguous keep the innermost in place.
    std::vector<int> order(rank);
    for (int i = 0; i < rank; ++i) order[i] = i;
    const int permutable = spec.layout == Layout::Strided ? rank : rank - 1;
    if (spec.layout != Layout::Contiguous && permutable > 1 && rng.chance(0.25))
        for (int i = permutable - 1; i > 0; --i) std::swap(order[i], order[rng.range(0, i)]);
    const bool pad = spec.layout != Layout::Contiguous && rng.chance(0.3);
    int64_t stride = 1;
    for (int j = rank - 1; j >= 0; --j) {
        const int d = order[j];
        a.t.strides[d] = stride;
        stride *= std::max<int64_t>(shape[d], 1);
        if (pad && j > 0 && rng.chance(0.6)) stride += rng.range(1, 3);
        if (j > 0) stride = (stride + spec.stride_multiple - 1) / spec.stride_multiple * spec.stride_multiple;
    }
    if (rng.chance(0.3))
        for (int i = rank; i < MOE4J_MAX_RANK; ++i) {
            a.t.shape[i] = static_cast<int64_t>(rng.next());
            a.t.strides[i] = static_cast<int64_t>(rng.next());
        }
    const int64_t bytes = span_bytes(a.t);
    a.block = c.new_block(bytes);
    a.t.data = c.blocks[a.block].raw;
    a.t.size_bytes = bytes;
    a.avail = bytes;
    fill(c, a, rng);
    return a;
}

// The weights ([N, K] E4M3) and scales ([ceil(N/128), K/128] F32) of `count` groups: separate allocations, or views
// of one stack [G, N, K] and [G, ceil(N/128), K/128] as a caller with a stacked checkpoint passes them.
Groups &weight_groups(Case &c, Rng &rng, const char *name, int64_t count, int64_t n, int64_t k) {
    c.groups.emplace_back();
    Groups &g = c.groups.back();
    g.name = name;
    g.count = count;
    const int64_t sn = (n + 127) / 128, sk = k / 128;
    if (rng.chance(0.5)) {
        for (int64_t i = 0; i < count; ++i) {
            Arg &w = tensor(c, rng, {name, kWeights, {2}, Layout::RowsDense}, MOE4J_E4M3, {n, k});
            Arg &s = tensor(c, rng, {name, {MOE4J_F32}, {2}, Layout::Strided}, MOE4J_F32, {sn, sk});
            fill(c, s, rng, true);
            w.group = s.group = i;
            s.group_scales = true;
            g.weights.push_back(&w);
            g.scales.push_back(&s);
        }
    } else {
        Arg &ws = tensor(c, rng, {name, kWeights, {3}, Layout::RowsDense}, MOE4J_E4M3, {count, n, k});
        Arg &ss = tensor(c, rng, {name, {MOE4J_F32}, {3}, Layout::Strided}, MOE4J_F32, {count, sn, sk});
        fill(c, ss, rng, true);
        for (int64_t i = 0; i < count; ++i) {
            for (Arg *stack : {&ws, &ss}) {
                c.args.push_back(*stack);
                Arg &v = c.args.back();
                v.group = i;
                v.group_scales = stack == &ss;
                v.t.rank = 2;
                v.t.shape[0] = stack->t.shape[1];
                v.t.shape[1] = stack->t.shape[2];
                v.t.strides[0] = stack->t.strides[1];
                v.t.strides[1] = stack->t.strides[2];
                v.t.shape[2] = v.t.shape[3] = v.t.strides[2] = v.t.strides[3] = 0;
                v.t.data = static_cast<char *>(stack->t.data) + i * stack->t.strides[0] * element_size(v.t.dtype);
                v.avail = stack->avail - i * stack->t.strides[0] * element_size(v.t.dtype);
                v.t.size_bytes = rng.chance(0.5) ? v.avail : span_bytes(v.t);
                v.ranks = {2};
                (v.group_scales ? g.scales : g.weights).push_back(&v);
            }
        }
        // the stacks themselves are not arguments of the call
        ws.present = ss.present = false;
        ws.optional = ss.optional = true;
        ws.hidden = ss.hidden = true;
    }
    return g;
}

// ------------------------------------------------------------------------------------------------ the entry points

const std::vector<int32_t> kFloat = {MOE4J_F32, MOE4J_BF16};
const std::vector<int32_t> kCastTypes = {MOE4J_F32, MOE4J_BF16, MOE4J_E4M3};
const std::vector<int32_t> kAnyType = {MOE4J_F32, MOE4J_BF16, MOE4J_F16, MOE4J_E4M3, MOE4J_I32, MOE4J_I64, MOE4J_U8};
const std::vector<int32_t> kF32 = {MOE4J_F32}, kI32 = {MOE4J_I32}, kE4M3 = {MOE4J_E4M3};

int32_t pick_of(Rng &rng, const std::vector<int32_t> &values) { return values[rng.next() % values.size()]; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// A bad index value: one of `values`, described.
int32_t bad_index(Rng &rng, std::initializer_list<int64_t> values, std::string *what) {
    const int64_t v = std::clamp<int64_t>(rng.pick(values), kMin32, kMax32);
    *what += " = " + std::to_string(v);
    return static_cast<int32_t>(v);
}

// A float scalar that must be refused (not finite), or for `positive` also zero and negative.
Mutator bad_float(const char *name, float *value, bool positive) {
    return {name, [=](Rng &rng, std::string *what) {
                const float inf = std::numeric_limits<float>::infinity();
                *value = positive ? rng.pick({0.0f, -0.0f, -1e-6f, -inf, inf, std::nanf("")})
                                  : rng.pick({inf, -inf, std::nanf(""), -std::nanf("")});
                *what = std::string(name) + " = " + std::to_string(*value);
                return true;
            }};
}

// The last one: an output that is the very same view as `input` (in place), allowed for this pair.
Arg &same_view_output(Case &c, Arg &input, const char *name, const std::vector<int32_t> &dtypes) {
    c.args.push_back(input);
    Arg &o = c.args.back();
    o.name = name;
    o.dtypes = dtypes;
    o.output = true;
    o.optional = false;
    return o;
}

void build_cast(Case &c, Rng &rng) {
    c.fn = "moe4j_cast";
    c.names = {"ctx", "src", "dst"};
    const int rank = static_cast<int>(rng.range(1, 4));
    std::vector<int64_t> shape(rank);
    for (int i = 0; i < rank; ++i) shape[i] = i == rank - 1 ? rng.range(1, 40) : rng.range(0, 4);
    Arg &src = tensor(c, rng, {"src", kCastTypes, {1, 2, 3, 4}, Layout::RowsDense}, pick_of(rng, kCastTypes), shape);
    Arg &dst =
        tensor(c, rng, {"dst", kCastTypes, {1, 2, 3, 4}, Layout::RowsDense}, pick_of(rng, kCastTypes), shape, true);
    c.overlaps = {{&dst, &src}};
    c.call = [&](moe4j_context *ctx) { return moe4j_cast(ctx, c.ptr(&src), c.out(&dst)); };
}

void build_quantize(Case &c, Rng &rng, bool per_block) {
    c.fn = per_block ? "moe4j_quantize_fp8_per_block" : "moe4j_quantize_fp8_per_token";
    const char *x_name = per_block ? "w" : "x", *s_name = per_block ? "scale_inv" : "scales";
    c.names = {"ctx", x_name, "q", s_name, "scale_format"};
    const int64_t block_rows = per_block ? 128 : 1;
    const int64_t rows = per_block ? rng.range(0, 260) : rng.range(0, 6), cols = rng.range(1, 300);
    Arg &x = tensor(c, rng, {x_name, kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat), {rows, cols});
    Arg &q = tensor(c, rng, {"q", kE4M3, {2}, Layout::RowsDense}, MOE4J_E4M3, {rows, cols}, true);
    Arg &s = tensor(c, rng, {s_name, kF32, {2}, Layout::Strided}, MOE4J_F32,
                    {ceil_div(rows, block_rows), ceil_div(cols, 128)}, true);
    int64_t *format = c.int_arg(rng.range(0, 1));
    c.scalars.push_back({"scale_format", [=](Rng &r, std::string *what) {
                             *format = r.pick<int64_t>({-1, 2, 3, 100, kMin32, kMax32});
                             *what = "scale_format = " + std::to_string(*format);
                             return true;
                         }});
    c.overlaps = {{&q, &x}, {&s, &x}, {&s, &q}};
    c.call = [&c, &x, &q, &s, format, per_block](moe4j_context *ctx) {
        const auto f = static_cast<int32_t>(*format);
        return per_block ? moe4j_quantize_fp8_per_block(ctx, c.ptr(&x), c.out(&q), c.out(&s), f)
                         : moe4j_quantize_fp8_per_token(ctx, c.ptr(&x), c.out(&q), c.out(&s), f);
    };
}

void build_dequantize(Case &c, Rng &rng) {
    c.fn = "moe4j_dequantize_fp8";
    c.names = {"ctx", "q", "scales", "block_rows", "out"};
    int64_t *block_rows = c.int_arg(rng.pick<int64_t>({1, 128}));
    const int64_t rows = *block_rows == 1 ? rng.range(0, 6) : rng.range(0, 260), cols = rng.range(1, 300);
    Arg &q = tensor(c, rng, {"q", kE4M3, {2}, Layout::RowsDense}, MOE4J_E4M3, {rows, cols});
    Arg &s = tensor(c, rng, {"scales", kF32, {2}, Layout::Strided}, MOE4J_F32,
                    {ceil_div(rows, *block_rows), ceil_div(cols, 128)});
    fill(c, s, rng, true);
    Arg &out = tensor(c, rng, {"out", kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat), {rows, cols}, true);
    c.scalars.push_back({"block_rows", [=](Rng &r, std::string *what) {
                             *block_rows = r.pick<int64_t>({0, -1, 2, 64, 127, 129, 256, kMin32, kMax32});
                             *what = "block_rows = " + std::to_string(*block_rows);
                             return true;
                         }});
    c.overlaps = {{&out, &q}, {&out, &s}};
    c.call = [&c, &q, &s, &out, block_rows](moe4j_context *ctx) {
        return moe4j_dequantize_fp8(ctx, c.ptr(&q), c.ptr(&s), static_cast<int32_t>(*block_rows), c.out(&out));
    };
}

// c (optional F32 [.., M, N]) and d (F32 or BF16), d at times the very same view as c (accumulation in place).
std::pair<Arg *, Arg *> gemm_output(Case &c, Rng &rng, const std::vector<int64_t> &shape,
                                    const std::vector<int32_t> &ranks) {
    Arg &acc = tensor(c, rng, {"c", kF32, ranks, Layout::RowsDense}, MOE4J_F32, shape);
    acc.optional = true;
    acc.present = rng.chance(0.5);
    Arg *d = nullptr;
    if (acc.present && rng.chance(0.3))
        d = &same_view_output(c, acc, "d", kFloat);
    else
        d = &tensor(c, rng, {"d", kFloat, ranks, Layout::RowsDense}, pick_of(rng, kFloat), shape, true);
    c.in_place.insert({d, &acc});
    return {&acc, d};
}

void build_fp8_gemm(Case &c, Rng &rng) {
    c.fn = "moe4j_fp8_gemm_nt";
    c.names = {"ctx", "a", "sfa", "b", "sfb", "c", "d"};
    const int64_t m = rng.range(0, 6), n = rng.range(1, 300), k = 128 * rng.range(1, 2);
    Arg &a = tensor(c, rng, {"a", kE4M3, {2}, Layout::RowsDense}, MOE4J_E4M3, {m, k});
    Arg &sfa = tensor(c, rng, {"sfa", kF32, {2}, Layout::Strided}, MOE4J_F32, {m, k / 128});
    fill(c, sfa, rng, true);
    Arg &b = tensor(c, rng, {"b", kWeights, {2}, Layout::RowsDense}, MOE4J_E4M3, {n, k});
    Arg &sfb = tensor(c, rng, {"sfb", kF32, {2}, Layout::Strided}, MOE4J_F32, {ceil_div(n, 128), k / 128});
    fill(c, sfb, rng, true);
    auto [acc, d] = gemm_output(c, rng, {m, n}, {2});
    c.overlaps = {{d, &a}, {d, &sfa}, {d, &b}, {d, &sfb}, {d, acc}};
    c.call = [&c, &a, &sfa, &b, &sfb, acc = acc, d = d](moe4j_context *ctx) {
        return moe4j_fp8_gemm_nt(ctx, c.ptr(&a), c.ptr(&sfa), c.ptr(&b), c.ptr(&sfb), c.ptr(acc), c.out(d));
    };
}

void overlap_groups(Case &c, Arg *out, const Groups &g) {
    for (Arg *w : g.weights) c.overlaps.push_back({out, w});
    for (Arg *s : g.scales) c.overlaps.push_back({out, s});
}

// grouped_layout I32 [rows]: blocks of `alignment` rows of one group each (or -1), padding rows at block ends; and
// the mutations of its values that must be refused.
Arg &contiguous_layout(Case &c, Rng &rng, int64_t rows, int64_t alignment, int64_t groups) {
    Arg &layout = tensor(c, rng, {"grouped_layout", kI32, {1}, Layout::Strided}, MOE4J_I32, {rows});
    for (int64_t block = 0; block < rows; block += alignment) {
        const int64_t g = rng.range(-1, groups - 1);
        const int64_t used = g < 0 ? 0 : rng.chance(0.3) ? rng.range(1, alignment) : alignment;
        for (int64_t r = block; r < block + alignment; ++r)
            set_i32(layout, {r}, r < block + used ? static_cast<int32_t>(g) : -1);
    }
    c.tables.push_back({"grouped_layout", [&layout, rows, groups](Rng &r, std::string *what) {
                            if (rows == 0) return false;
                            const int64_t row = r.range(0, rows - 1);
                            *what = "grouped_layout[" + std::to_string(row) + "]";
                            set_i32(layout, {row}, bad_index(r, {groups, groups + 7, -2, kMin32, kMax32}, what));
                            return true;
                        }});
    c.tables.push_back({"grouped_layout", [&layout, rows, alignment, groups](Rng &r, std::string *what) {
                            if (rows == 0 || alignment < 2 || groups < 2) return false;
                            const int64_t block = r.range(0, rows / alignment - 1) * alignment;
                            const int64_t first = block + r.range(0, alignment - 1);
                            int64_t second = block + r.range(0, alignment - 2);
                            if (second >= first) ++second;
                            // An earlier mutation may have left any value in the row; keep this case about two groups.
                            const int32_t v = get_i32(layout, {first});
                            const int32_t g = v >= 0 && v < groups ? v : 0;
                            set_i32(layout, {first}, g);
                            set_i32(layout, {second}, static_cast<int32_t>((g + 1) % groups));
                            *what = "grouped_layout rows " + std::to_string(first) + " and " + std::to_string(second) +
                                    " of one alignment block in two groups";
                            return true;
                        }});
    return layout;
}

Mutator alignment_mutator(int64_t *alignment) {
    return {"alignment", [=](Rng &r, std::string *what) {
                *alignment = r.pick<int64_t>({0, -1, -128, kMin32});
                *what = "alignment = " + std::to_string(*alignment);
                return true;
            }};
}

void build_grouped_contiguous(Case &c, Rng &rng) {
    c.fn = "moe4j_grouped_fp8_gemm_contiguous";
    c.names = {"ctx", "a", "sfa", "b", "grouped_layout", "alignment", "d"};
    const int64_t k = 128 * rng.range(1, 2), n = rng.range(1, 200), groups = rng.range(1, 4);
    int64_t *alignment = c.int_arg(rng.chance(0.05) ? 128 : rng.pick<int64_t>({1, 2, 4, 8}));
    const int64_t rows = *alignment * rng.range(0, *alignment == 128 ? 1 : 4);
    Arg &a = tensor(c, rng, {"a", kE4M3, {2}, Layout::RowsDense}, MOE4J_E4M3, {rows, k});
    Arg &sfa = tensor(c, rng, {"sfa", kF32, {2}, Layout::Strided}, MOE4J_F32, {rows, k / 128});
    fill(c, sfa, rng, true);
    Groups &b = weight_groups(c, rng, "b", groups, n, k);
    Arg &layout = contiguous_layout(c, rng, rows, *alignment, groups);
    Arg &d = tensor(c, rng, {"d", kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat), {rows, n}, true);
    c.scalars.push_back(alignment_mutator(alignment));
    c.overlaps = {{&d, &a}, {&d, &sfa}, {&d, &layout}};
    overlap_groups(c, &d, b);
    c.call = [&c, &a, &sfa, &b, &layout, &d, alignment](moe4j_context *ctx) {
        return moe4j_grouped_fp8_gemm_contiguous(ctx, c.ptr(&a), c.ptr(&sfa), c.ptr(&b), c.ptr(&layout),
                                                 static_cast<int32_t>(*alignment), c.out(&d));
    };
}

void build_grouped_masked(Case &c, Rng &rng) {
    c.fn = "moe4j_grouped_fp8_gemm_masked";
    c.names = {"ctx", "a", "sfa", "b", "masked_m", "d"};
    const int64_t k = 128 * rng.range(1, 2), n = rng.range(1, 200), groups = rng.range(1, 4), m_max = rng.range(0, 6);
    Arg &a = tensor(c, rng, {"a", kE4M3, {3}, Layout::RowsDense}, MOE4J_E4M3, {groups, m_max, k});
    Arg &sfa = tensor(c, rng, {"sfa", kF32, {3}, Layout::Strided}, MOE4J_F32, {groups, m_max, k / 128});
    fill(c, sfa, rng, true);
    Groups &b = weight_groups(c, rng, "b", groups, n, k);
    Arg &masked = tensor(c, rng, {"masked_m", kI32, {1}, Layout::Strided}, MOE4J_I32, {groups});
    for (int64_t g = 0; g < groups; ++g) set_i32(masked, {g}, static_cast<int32_t>(rng.range(0, m_max)));
    Arg &d = tensor(c, rng, {"d", kFloat, {3}, Layout::RowsDense}, pick_of(rng, kFloat), {groups, m_max, n}, true);
    c.tables.push_back({"masked_m", [&masked, groups, m_max](Rng &r, std::string *what) {
                            const int64_t g = r.range(0, groups - 1);
                            *what = "masked_m[" + std::to_string(g) + "]";
                            set_i32(masked, {g}, bad_index(r, {-1, m_max + 1, m_max + 100, kMin32, kMax32}, what));
                            return true;
                        }});
    c.overlaps = {{&d, &a}, {&d, &sfa}, {&d, &masked}};
    overlap_groups(c, &d, b);
    c.call = [&c, &a, &sfa, &b, &masked, &d](moe4j_context *ctx) {
        return moe4j_grouped_fp8_gemm_masked(ctx, c.ptr(&a), c.ptr(&sfa), c.ptr(&b), c.ptr(&masked), c.out(&d));
    };
}

void build_gemm(Case &c, Rng &rng) {
    c.fn = "moe4j_gemm_nt";
    c.names = {"ctx", "a", "b", "c", "d"};
    const bool batched = rng.chance(0.4);
    const int64_t batch = rng.range(1, 3), m = rng.range(0, 5), n = rng.range(1, 40), k = rng.range(1, 70);
    const auto shape = [&](int64_t rows, int64_t cols) {
        return batched ? std::vector<int64_t>{batch, rows, cols} : std::vector<int64_t>{rows, cols};
    };
    const int32_t dtype = pick_of(rng, kFloat);
    Arg &a = tensor(c, rng, {"a", kFloat, {2, 3}, Layout::RowsDense}, dtype, shape(m, k));
    Arg &b = tensor(c, rng, {"b", kFloat, {2, 3}, Layout::RowsDense}, dtype, shape(n, k));
    auto [acc, d] = gemm_output(c, rng, shape(m, n), {2, 3});
    c.overlaps = {{d, &a}, {d, &b}, {d, acc}};
    c.call = [&c, &a, &b, acc = acc, d = d](moe4j_context *ctx) {
        return moe4j_gemm_nt(ctx, c.ptr(&a), c.ptr(&b), c.ptr(acc), c.out(d));
    };
}

void build_pack(Case &c, Rng &rng) {
    c.fn = "moe4j_pack_fp8_weights";
    c.names = {"ctx", "w", "packed"};
    const int64_t n = 32 * rng.range(0, 3), k = 128 * rng.range(1, 2);
    Arg &w = tensor(c, rng, {"w", kE4M3, {2}, Layout::RowsDense}, MOE4J_E4M3, {n, k});
    Arg &packed = tensor(c, rng, {"packed", {MOE4J_E4M3_P32}, {2}, Layout::Contiguous}, MOE4J_E4M3_P32, {n, k}, true);
    c.overlaps = {{&packed, &w}};
    c.call = [&c, &w, &packed](moe4j_context *ctx) { return moe4j_pack_fp8_weights(ctx, c.ptr(&w), c.out(&packed)); };
}

void build_quantize_q8(Case &c, Rng &rng) {
    c.fn = "moe4j_quantize_q8_weights";
    c.names = {"ctx", "w", "q", "scales"};
    const int64_t n = 16 * rng.range(0, 3), k = 128 * rng.range(1, 2);
    Arg &w = tensor(c, rng, {"w", kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat), {n, k});
    Arg &q = tensor(c, rng, {"q", {MOE4J_Q8_P16}, {2}, Layout::Contiguous}, MOE4J_Q8_P16, {n, k}, true);
    Arg &scales = tensor(c, rng, {"scales", kF32, {1}, Layout::RowsDense}, MOE4J_F32, {n}, true);
    c.overlaps = {{&q, &w}, {&scales, &w}, {&scales, &q}};
    c.call = [&c, &w, &q, &scales](moe4j_context *ctx) {
        return moe4j_quantize_q8_weights(ctx, c.ptr(&w), c.out(&q), c.out(&scales));
    };
}

void build_q8_gemm(Case &c, Rng &rng) {
    c.fn = "moe4j_q8_gemm_nt";
    c.names = {"ctx", "a", "b", "sfb", "d"};
    const int64_t m = rng.range(0, 5), n = 16 * rng.range(0, 3), k = 128 * rng.range(1, 2);
    Arg &a = tensor(c, rng, {"a", kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat), {m, k});
    Arg &b = tensor(c, rng, {"b", {MOE4J_Q8_P16}, {2}, Layout::Contiguous}, MOE4J_Q8_P16, {n, k});
    Arg &sfb = tensor(c, rng, {"sfb", kF32, {1}, Layout::RowsDense}, MOE4J_F32, {n});
    Arg &d = tensor(c, rng, {"d", kF32, {2}, Layout::RowsDense}, MOE4J_F32, {m, n}, true);
    c.overlaps = {{&d, &a}, {&d, &b}, {&d, &sfb}};
    c.call = [&c, &a, &b, &sfb, &d](moe4j_context *ctx) {
        return moe4j_q8_gemm_nt(ctx, c.ptr(&a), c.ptr(&b), c.ptr(&sfb), c.out(&d));
    };
}

void build_expert_ffn(Case &c, Rng &rng) {
    c.fn = "moe4j_fp8_expert_ffn_contiguous";
    c.names = {"ctx", "x", "sfx", "w_gate", "w_up", "w_down", "grouped_layout", "alignment", "d"};
    const int64_t hidden = 128 * (rng.chance(0.2) ? 2 : 1), inter = 128 * (rng.chance(0.2) ? 2 : 1);
    const int64_t groups = rng.range(1, 3);
    int64_t *alignment = c.int_arg(rng.pick<int64_t>({1, 2, 4}));
    const int64_t rows = *alignment * rng.range(0, 3);
    Arg &x = tensor(c, rng, {"x", kE4M3, {2}, Layout::RowsDense}, MOE4J_E4M3, {rows, hidden});
    Arg &sfx = tensor(c, rng, {"sfx", kF32, {2}, Layout::Strided}, MOE4J_F32, {rows, hidden / 128});
    fill(c, sfx, rng, true);
    Groups &gate = weight_groups(c, rng, "w_gate", groups, inter, hidden);
    Groups &up = weight_groups(c, rng, "w_up", groups, inter, hidden);
    Groups &down = weight_groups(c, rng, "w_down", groups, hidden, inter);
    Arg &layout = contiguous_layout(c, rng, rows, *alignment, groups);
    Arg &d = tensor(c, rng, {"d", kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat), {rows, hidden}, true);
    c.scalars.push_back(alignment_mutator(alignment));
    c.overlaps = {{&d, &x}, {&d, &sfx}, {&d, &layout}};
    for (const Groups *g : {&gate, &up, &down}) overlap_groups(c, &d, *g);
    // Gate and up weights of a group are both packed or both not.
    c.cross = [&gate, &up]() {
        std::vector<std::vector<std::string>> names;
        for (size_t g = 0; g < gate.weights.size() && g < up.weights.size(); ++g)
            if (static_cast<int64_t>(g) < gate.count && static_cast<int64_t>(g) < up.count &&
                gate.weights[g]->t.dtype != up.weights[g]->t.dtype)
                names.push_back({"'w_up'", "'w_gate'", "group " + std::to_string(g)});
        return names;
    };
    c.call = [&c, &x, &sfx, &gate, &up, &down, &layout, &d, alignment](moe4j_context *ctx) {
        return moe4j_fp8_expert_ffn_contiguous(ctx, c.ptr(&x), c.ptr(&sfx), c.ptr(&gate), c.ptr(&up), c.ptr(&down),
                                               c.ptr(&layout), static_cast<int32_t>(*alignment), c.out(&d));
    };
}

constexpr int64_t kBlockTokens = 64, kFp8TokenBytes = 656;

void build_mla_decode(Case &c, Rng &rng) {
    c.fn = "moe4j_mla_decode";
    c.names = {"ctx", "q", "kcache", "block_table", "cache_seqlens", "softmax_scale", "causal", "out", "lse"};
    const bool fp8 = rng.chance(0.3);
    const int64_t dims = fp8 || rng.chance(0.4) ? 576 : rng.range(1, 80);
    const int64_t dv = fp8 ? (rng.chance(0.5) ? 512 : rng.range(1, 512)) : rng.range(1, dims);
    const int64_t h_kv = rng.range(1, 2), h_q = h_kv * rng.range(1, 3), batch = rng.range(0, 3);
    const int64_t s_q = rng.range(1, 3), num_blocks = rng.range(1, 3), max_blocks = rng.range(1, 4);
    Arg &q = tensor(c, rng, {"q", {MOE4J_BF16}, {4}, Layout::RowsDense}, MOE4J_BF16, {batch, s_q, h_q, dims});
    Arg &kcache = fp8 ? tensor(c, rng, {"kcache", {MOE4J_BF16, MOE4J_U8}, {4}, Layout::RowsDense, 4}, MOE4J_U8,
                               {num_blocks, kBlockTokens, h_kv, kFp8TokenBytes})
                      : tensor(c, rng, {"kcache", {MOE4J_BF16, MOE4J_U8}, {4}, Layout::RowsDense}, MOE4J_BF16,
                               {num_blocks, kBlockTokens, h_kv, dims});
    kcache.fp8_records = true;
    kcache.tied = 0b1010;  // the number of blocks and of kv heads (dividing h_q) are free
    Arg &table = tensor(c, rng, {"block_table", kI32, {2}, Layout::Strided}, MOE4J_I32, {batch, max_blocks});
    table.tied = 0b01;
    Arg &lengths = tensor(c, rng, {"cache_seqlens", kI32, {1}, Layout::Strided}, MOE4J_I32, {batch});
    std::vector<int64_t> used(batch);
    for (int64_t i = 0; i < batch; ++i) {
        const int64_t len = rng.range(0, std::min<int64_t>(max_blocks * kBlockTokens, 150));
        set_i32(lengths, {i}, static_cast<int32_t>(len));
        used[i] = ceil_div(len, kBlockTokens);
        for (int64_t j = 0; j < max_blocks; ++j)  // entries past a sequence's blocks are never read: any value
            set_i32(table, {i, j},
                    j < used[i] || rng.chance(0.5) ? static_cast<int32_t>(rng.range(0, num_blocks - 1))
                                                   : static_cast<int32_t>(rng.next()));
    }
    Arg &out =
        tensor(c, rng, {"out", kFloat, {4}, Layout::RowsDense}, pick_of(rng, kFloat), {batch, s_q, h_q, dv}, true);
    out.tied = 0b0111;
    Arg &lse = tensor(c, rng, {"lse", kF32, {3}, Layout::Strided}, MOE4J_F32, {batch, h_q, s_q}, true);
    float *scale = c.float_arg(1.0f / std::sqrt(static_cast<float>(dims)));
    int64_t *causal = c.int_arg(rng.pick<int64_t>({0, 1, 1, -7}));
    c.scalars.push_back(bad_float("softmax_scale", scale, false));
    c.tables.push_back(
        {"block_table", [&table, used, num_blocks](Rng &r, std::string *what) {
             std::vector<int64_t> seqs;
             for (size_t i = 0; i < used.size(); ++i)
                 if (used[i] > 0) seqs.push_back(static_cast<int64_t>(i));
             if (seqs.empty()) return false;
             const int64_t i = seqs[r.next() % seqs.size()], j = r.range(0, used[i] - 1);
             *what = "block_table[" + std::to_string(i) + ", " + std::to_string(j) + "]";
             set_i32(table, {i, j}, bad_index(r, {-1, num_blocks, num_blocks + 9, kMin32, kMax32}, what));
             return true;
         }});
    c.tables.push_back(
        {"cache_seqlens", [&lengths, batch, max_blocks](Rng &r, std::string *what) {
             if (batch == 0) return false;
             const int64_t i = r.range(0, batch - 1);
             *what = "cache_seqlens[" + std::to_string(i) + "]";
             set_i32(lengths, {i}, bad_index(r, {-1, kMin32, max_blocks * kBlockTokens + 1, kMax32}, what));
             return true;
         }});
    c.overlaps = {{&out, &q}, {&out, &kcache}, {&out, &table}, {&out, &lengths}, {&out, &lse},
                  {&lse, &q}, {&lse, &kcache}, {&lse, &table}, {&lse, &lengths}};
    c.call = [&c, &q, &kcache, &table, &lengths, &out, &lse, scale, causal](moe4j_context *ctx) {
        return moe4j_mla_decode(ctx, c.ptr(&q), c.ptr(&kcache), c.ptr(&table), c.ptr(&lengths), *scale,
                                static_cast<int32_t>(*causal), c.out(&out), c.out(&lse));
    };
}

void build_mla_append(Case &c, Rng &rng) {
    c.fn = "moe4j_mla_cache_append";
    c.names = {"ctx", "kv", "slot_mapping", "kcache"};
    const bool fp8 = rng.chance(0.4);
    const int64_t h_kv = rng.range(1, 2), num_blocks = rng.range(1, 3), tokens = rng.range(0, 5);
    const int64_t slots = num_blocks * kBlockTokens;
    Arg &kv = tensor(c, rng, {"kv", {MOE4J_BF16}, {3}, Layout::RowsDense}, MOE4J_BF16, {tokens, h_kv, 576});
    Arg &mapping = tensor(c, rng, {"slot_mapping", kI32, {1}, Layout::Strided}, MOE4J_I32, {tokens});
    std::vector<int32_t> free_slots(static_cast<size_t>(slots));
    for (int64_t s = 0; s < slots; ++s) free_slots[s] = static_cast<int32_t>(s);
    for (int64_t t = 0; t < tokens; ++t) {
        const size_t i = rng.next() % free_slots.size();
        set_i32(mapping, {t}, rng.chance(0.2) ? -1 : free_slots[i]);
        free_slots.erase(free_slots.begin() + static_cast<std::ptrdiff_t>(i));
    }
    Arg &kcache = fp8 ? tensor(c, rng, {"kcache", {MOE4J_BF16, MOE4J_U8}, {4}, Layout::RowsDense, 4}, MOE4J_U8,
                               {num_blocks, kBlockTokens, h_kv, kFp8TokenBytes}, true)
                      : tensor(c, rng, {"kcache", {MOE4J_BF16, MOE4J_U8}, {4}, Layout::RowsDense}, MOE4J_BF16,
                               {num_blocks, kBlockTokens, h_kv, 576}, true);
    kcache.fp8_records = true;
    kcache.tied = 0b1110;
    c.tables.push_back({"slot_mapping", [&mapping, tokens, slots](Rng &r, std::string *what) {
                            if (tokens == 0) return false;
                            const int64_t t = r.range(0, tokens - 1);
                            *what = "slot_mapping[" + std::to_string(t) + "]";
                            set_i32(mapping, {t}, bad_index(r, {-2, slots, slots + 64, kMin32, kMax32}, what));
                            return true;
                        }});
    c.tables.push_back({"slot_mapping", [&mapping, tokens](Rng &r, std::string *what) {
                            std::vector<int64_t> mapped;
                            for (int64_t t = 0; t < tokens; ++t)
                                if (get_i32(mapping, {t}) >= 0) mapped.push_back(t);
                            if (mapped.empty() || tokens < 2) return false;
                            const int64_t from = mapped[r.next() % mapped.size()];
                            int64_t to = r.range(0, tokens - 2);
                            if (to >= from) ++to;
                            set_i32(mapping, {to}, get_i32(mapping, {from}));
                            *what = "slot_mapping: tokens " + std::to_string(from) + " and " + std::to_string(to) +
                                    " share a slot";
                            return true;
                        }});
    c.overlaps = {{&kcache, &kv}, {&kcache, &mapping}};
    c.call = [&c, &kv, &mapping, &kcache](moe4j_context *ctx) {
        return moe4j_mla_cache_append(ctx, c.ptr(&kv), c.ptr(&mapping), c.out(&kcache));
    };
}

// An index mutation: entry i (or i, j) of `index` set to a bad value from `values`.
Mutator bad_entry(Arg &index, std::vector<int64_t> values) {
    return {index.name, [&index, values](Rng &r, std::string *what) {
                const int64_t rows = index.t.shape[0], cols = index.t.rank == 2 ? index.t.shape[1] : 1;
                if (rows == 0 || cols == 0) return false;
                const int64_t i = r.range(0, rows - 1), j = r.range(0, cols - 1);
                const int64_t v = std::clamp<int64_t>(values[r.next() % values.size()], kMin32, kMax32);
                if (index.t.rank == 2)
                    set_i32(index, {i, j}, static_cast<int32_t>(v));
                else
                    set_i32(index, {i}, static_cast<int32_t>(v));
                *what = index.name + "[" + std::to_string(i) + (index.t.rank == 2 ? ", " + std::to_string(j) : "") +
                        "] = " + std::to_string(v);
                return true;
            }};
}

void build_gather(Case &c, Rng &rng) {
    c.fn = "moe4j_gather_rows";
    c.names = {"ctx", "src", "index", "dst"};
    const int32_t dtype = pick_of(rng, kAnyType);
    const int64_t t = rng.range(0, 6), cols = rng.range(1, 40), rows = rng.range(0, 6);
    Arg &src = tensor(c, rng, {"src", kAnyType, {2}, Layout::RowsDense}, dtype, {t, cols});
    src.tied = 0b10;
    Arg &index = tensor(c, rng, {"index", kI32, {1}, Layout::Strided}, MOE4J_I32, {rows});
    for (int64_t r = 0; r < rows; ++r) set_i32(index, {r}, static_cast<int32_t>(rng.range(-1, t - 1)));
    Arg &dst = tensor(c, rng, {"dst", kAnyType, {2}, Layout::RowsDense}, dtype, {rows, cols}, true);
    c.tables.push_back(bad_entry(index, {-2, t, t + 5, kMin32, kMax32}));
    c.overlaps = {{&dst, &src}, {&dst, &index}};
    c.call = [&c, &src, &index, &dst](moe4j_context *ctx) {
        return moe4j_gather_rows(ctx, c.ptr(&src), c.ptr(&index), c.out(&dst));
    };
}

void build_combine(Case &c, Rng &rng) {
    c.fn = "moe4j_combine_rows";
    c.names = {"ctx", "rows", "index", "weights", "base", "out"};
    const int64_t r = rng.range(0, 6), hidden = rng.range(1, 40), tokens = rng.range(0, 5), k = rng.range(0, 4);
    Arg &rows = tensor(c, rng, {"rows", kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat), {r, hidden});
    rows.tied = 0b10;
    Arg &index = tensor(c, rng, {"index", kI32, {2}, Layout::Strided}, MOE4J_I32, {tokens, k});
    for (int64_t i = 0; i < tokens; ++i)
        for (int64_t j = 0; j < k; ++j) set_i32(index, {i, j}, static_cast<int32_t>(rng.range(-1, r - 1)));
    Arg &weights = tensor(c, rng, {"weights", kF32, {2}, Layout::Strided}, MOE4J_F32, {tokens, k});
    Arg &base = tensor(c, rng, {"base", kF32, {2}, Layout::RowsDense}, MOE4J_F32, {tokens, hidden});
    base.optional = true;
    base.present = rng.chance(0.5);
    Arg &out = tensor(c, rng, {"out", kF32, {2}, Layout::RowsDense}, MOE4J_F32, {tokens, hidden}, true);
    c.tables.push_back(bad_entry(index, {-2, r, r + 3, kMin32, kMax32}));
    c.overlaps = {{&out, &rows}, {&out, &index}, {&out, &weights}, {&out, &base}};
    c.call = [&c, &rows, &index, &weights, &base, &out](moe4j_context *ctx) {
        return moe4j_combine_rows(ctx, c.ptr(&rows), c.ptr(&index), c.ptr(&weights), c.ptr(&base), c.out(&out));
    };
}

void build_rms_norm(Case &c, Rng &rng) {
    c.fn = "moe4j_rms_norm";
    c.names = {"ctx", "x", "residual", "weight", "eps", "sum_out", "y"};
    const int64_t tokens = rng.range(0, 5), dim = rng.range(1, 70);
    Arg &x = tensor(c, rng, {"x", kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat), {tokens, dim});
    Arg &residual = tensor(c, rng, {"residual", kF32, {2}, Layout::RowsDense}, MOE4J_F32, {tokens, dim});
    residual.optional = true;
    residual.present = rng.chance(0.5);
    Arg &weight = tensor(c, rng, {"weight", kF32, {1}, Layout::RowsDense}, MOE4J_F32, {dim});
    Arg *sum_out = nullptr;
    const int64_t in_place = rng.range(0, 3);
    if (in_place == 1 && x.t.dtype == MOE4J_F32)
        sum_out = &same_view_output(c, x, "sum_out", kF32);
    else if (in_place == 2 && residual.present)
        sum_out = &same_view_output(c, residual, "sum_out", kF32);
    else
        sum_out = &tensor(c, rng, {"sum_out", kF32, {2}, Layout::RowsDense}, MOE4J_F32, {tokens, dim}, true);
    sum_out->optional = true;
    sum_out->present = in_place != 3 || rng.chance(0.5);
    Arg &y = tensor(c, rng, {"y", kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat), {tokens, dim}, true);
    float *eps = c.float_arg(1e-6f);
    c.scalars.push_back(bad_float("eps", eps, true));
    c.in_place = {{sum_out, &x}, {sum_out, &residual}};
    c.overlaps = {{sum_out, &x},   {sum_out, &residual}, {sum_out, &weight}, {&y, &x},
                  {&y, &residual}, {&y, &weight},        {&y, sum_out}};
    c.call = [&c, &x, &residual, &weight, eps, sum_out, &y](moe4j_context *ctx) {
        return moe4j_rms_norm(ctx, c.ptr(&x), c.ptr(&residual), c.ptr(&weight), *eps, c.out(sum_out), c.out(&y));
    };
}

void build_rope(Case &c, Rng &rng) {
    c.fn = "moe4j_rope";
    c.names = {"ctx", "x", "positions", "freqs", "rotation_scale", "out"};
    const int64_t tokens = rng.range(0, 5), heads = rng.range(1, 3), dims = 2 * rng.range(0, 40);
    Arg &x = tensor(c, rng, {"x", kFloat, {3}, Layout::RowsDense}, pick_of(rng, kFloat), {tokens, heads, dims});
    Arg &positions = tensor(c, rng, {"positions", kI32, {1}, Layout::Strided}, MOE4J_I32, {tokens});
    for (int64_t t = 0; t < tokens; ++t) set_i32(positions, {t}, static_cast<int32_t>(rng.range(0, 5000)));
    Arg &freqs = tensor(c, rng, {"freqs", kF32, {1}, Layout::Strided}, MOE4J_F32, {dims / 2});
    Arg &out = rng.chance(0.3) ? same_view_output(c, x, "out", kFloat)
                               : tensor(c, rng, {"out", kFloat, {3}, Layout::RowsDense}, pick_of(rng, kFloat),
                                        {tokens, heads, dims}, true);
    float *scale = c.float_arg(rng.uniform(0.5f, 1.5f));
    c.scalars.push_back(bad_float("rotation_scale", scale, false));
    c.tables.push_back(bad_entry(positions, {-1, -4096, kMin32}));
    c.in_place = {{&out, &x}};
    c.overlaps = {{&out, &x}, {&out, &positions}, {&out, &freqs}};
    c.call = [&c, &x, &positions, &freqs, scale, &out](moe4j_context *ctx) {
        return moe4j_rope(ctx, c.ptr(&x), c.ptr(&positions), c.ptr(&freqs), *scale, c.out(&out));
    };
}

void build_silu(Case &c, Rng &rng) {
    c.fn = "moe4j_silu_mul";
    c.names = {"ctx", "gate", "up", "out"};
    const int64_t tokens = rng.range(0, 5), width = rng.range(1, 80);
    Arg &gate = tensor(c, rng, {"gate", kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat), {tokens, width});
    Arg &up = tensor(c, rng, {"up", kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat), {tokens, width});
    const int64_t in_place = rng.range(0, 4);
    Arg &out = in_place == 1   ? same_view_output(c, gate, "out", kFloat)
               : in_place == 2 ? same_view_output(c, up, "out", kFloat)
                               : tensor(c, rng, {"out", kFloat, {2}, Layout::RowsDense}, pick_of(rng, kFloat),
                                        {tokens, width}, true);
    c.in_place = {{&out, &gate}, {&out, &up}};
    c.overlaps = {{&out, &gate}, {&out, &up}};
    c.call = [&c, &gate, &up, &out](moe4j_context *ctx) {
        return moe4j_silu_mul(ctx, c.ptr(&gate), c.ptr(&up), c.out(&out));
    };
}

void build_logits(Case &c, Rng &rng) {
    c.fn = "moe4j_logits_stats";
    c.names = {"ctx", "logits", "argmax", "sum_exp"};
    const int64_t rows = rng.range(0, 5), vocab = rng.range(1, 200);
    Arg &logits = tensor(c, rng, {"logits", kF32, {2}, Layout::RowsDense}, MOE4J_F32, {rows, vocab});
    logits.tied = 0b01;  // V is free: any V >= 1 that fits is a valid call
    Arg &argmax = tensor(c, rng, {"argmax", kI32, {1}, Layout::Strided}, MOE4J_I32, {rows}, true);
    Arg &sum_exp = tensor(c, rng, {"sum_exp", kF32, {1}, Layout::Strided}, MOE4J_F32, {rows}, true);
    c.overlaps = {{&argmax, &logits}, {&sum_exp, &logits}, {&sum_exp, &argmax}};
    c.call = [&c, &logits, &argmax, &sum_exp](moe4j_context *ctx) {
        return moe4j_logits_stats(ctx, c.ptr(&logits), c.out(&argmax), c.out(&sum_exp));
    };
}

void build_copy(Case &c, Rng &rng) {
    c.fn = "moe4j_copy";
    c.names = {"ctx", "src", "dst"};
    const int rank = static_cast<int>(rng.range(1, 4));
    std::vector<int64_t> shape(rank);
    for (int i = 0; i < rank; ++i) shape[i] = rng.range(i == rank - 1 ? 1 : 0, 5);
    const int32_t dtype = pick_of(rng, kAnyType);
    Arg &src = tensor(c, rng, {"src", kAnyType, {1, 2, 3, 4}, Layout::Contiguous}, dtype, shape);
    Arg &dst = tensor(c, rng, {"dst", kAnyType, {1, 2, 3, 4}, Layout::Contiguous}, dtype, shape, true);
    c.overlaps = {{&dst, &src}};
    c.call = [&c, &src, &dst](moe4j_context *ctx) { return moe4j_copy(ctx, c.ptr(&src), c.out(&dst)); };
}

void build_prefetch(Case &c, Rng &rng) {
    c.fn = "moe4j_prefetch";
    c.names = {"ctx", "t"};
    const int rank = static_cast<int>(rng.range(1, 4));
    std::vector<int64_t> shape(rank);
    for (int i = 0; i < rank; ++i) shape[i] = rng.range(0, 5);
    std::vector<int32_t> dtypes = kAnyType;
    dtypes.push_back(MOE4J_E4M3_P32);
    dtypes.push_back(MOE4J_Q8_P16);
    Arg &t = tensor(c, rng, {"t", dtypes, {1, 2, 3, 4}, Layout::Strided}, pick_of(rng, kAnyType), shape);
    t.tied = 0;  // no extent has to agree with another's
    c.call = [&c, &t](moe4j_context *ctx) { return moe4j_prefetch(ctx, c.ptr(&t)); };
}

struct EntryPoint {
    const char *name;
    int weight;
    void (*build)(Case &, Rng &);
};

const std::vector<EntryPoint> &kernel_entry_points() {
    static const std::vector<EntryPoint> all = {
        {"moe4j_cast", 6, build_cast},
        {"moe4j_quantize_fp8_per_token", 5, [](Case &c, Rng &r) { build_quantize(c, r, false); }},
        {"moe4j_quantize_fp8_per_block", 4, [](Case &c, Rng &r) { build_quantize(c, r, true); }},
        {"moe4j_dequantize_fp8", 5, build_dequantize},
        {"moe4j_fp8_gemm_nt", 7, build_fp8_gemm},
        {"moe4j_grouped_fp8_gemm_contiguous", 7, build_grouped_contiguous},
        {"moe4j_grouped_fp8_gemm_masked", 7, build_grouped_masked},
        {"moe4j_gemm_nt", 6, build_gemm},
        {"moe4j_fp8_expert_ffn_contiguous", 7, build_expert_ffn},
        {"moe4j_pack_fp8_weights", 2, build_pack},
        {"moe4j_quantize_q8_weights", 3, build_quantize_q8},
        {"moe4j_q8_gemm_nt", 5, build_q8_gemm},
        {"moe4j_mla_decode", 7, build_mla_decode},
        {"moe4j_mla_cache_append", 6, build_mla_append},
        {"moe4j_gather_rows", 6, build_gather},
        {"moe4j_combine_rows", 6, build_combine},
        {"moe4j_rms_norm", 6, build_rms_norm},
        {"moe4j_rope", 6, build_rope},
        {"moe4j_silu_mul", 5, build_silu},
        {"moe4j_logits_stats", 4, build_logits},
        {"moe4j_copy", 5, build_copy},
        {"moe4j_prefetch", 3, build_prefetch},
    };
    return all;
}

// ------------------------------------------------------------------------------------------------ mutations

enum class Kind {
    Neutral,      // the call stays valid
    Field,        // may or may not be valid; the descriptors' own rules decide (Arg::problem)
    Conditional,  // must be refused when it is the only non-neutral mutation
    Reject        // must be refused
};

// Substrings a refusal's message must all contain, one alternative of them.
using Names = std::vector<std::vector<std::string>>;

struct Applied {
    Kind kind;
    std::string what;
    Names names;
    std::string category = "";  // for the run's tally of mutations
};

std::string quoted(const std::string &name) { return "'" + name + "'"; }

std::vector<std::string> names_of(const Arg &a) {
    if (a.group >= 0) return {quoted(a.name), "group " + std::to_string(a.group)};
    return {quoted(a.name)};
}

std::string dims_string(const moe4j_tensor &t, bool strides) {
    std::string s = "[";
    for (int i = 0; i < std::clamp(t.rank, 0, kMaxRank); ++i)
        s += (i ? ", " : "") + std::to_string(strides ? t.strides[i] : t.shape[i]);
    return s + "]";
}

// old * factor + add in two's complement (a field may already hold an extreme value).
int64_t wrapped(int64_t old, uint64_t factor, int64_t add) {
    return static_cast<int64_t>(static_cast<uint64_t>(old) * factor + static_cast<uint64_t>(add));
}

// Changes one or two fields of a's descriptor (or its memory); the result may be valid or not.
Applied mutate_field(Case &c, Arg &a, Rng &rng) {
    Applied m{Kind::Field, a.label(), {names_of(a)}};
    moe4j_tensor &t = a.t;
    const int rank = std::clamp(t.rank, 1, kMaxRank);
    const int dim = static_cast<int>(rng.range(0, rank - 1));
    switch (rng.range(0, 11)) {
        case 0:
            if (a.group < 0) {
                a.present = false;
                m.what += " = null";
                m.category = "null descriptor";
                break;
            }
            [[fallthrough]];
        case 1:
            t.reserved = static_cast<int32_t>(rng.pick<int64_t>({1, -1, kMax32}));
            m.what += ".reserved = " + std::to_string(t.reserved);
            m.category = "reserved";
            break;
        case 2:
            t.rank = static_cast<int32_t>(rng.pick<int64_t>({-1, 0, 1, 2, 3, 4, 5, kMin32, kMax32}));
            m.what += ".rank = " + std::to_string(t.rank);
            m.category = "rank";
            break;
        case 3:
            t.dtype = static_cast<int32_t>(rng.pick<int64_t>({-1, 0, 1, 2, 3, 4, 5, 6, 7, 1000}));
            m.what += ".dtype = " + std::to_string(t.dtype);
            m.category = "dtype";
            break;
        case 4:
            t.device = static_cast<int32_t>(rng.pick<int64_t>({0, 1, -2, kMax32}));
            m.what += ".device = " + std::to_string(t.device);
            m.category = "device";
            break;
        case 5:
        case 6: {
            const int64_t old = t.shape[dim];
            t.shape[dim] = rng.pick<int64_t>({-1, kMin64, 0, 1, wrapped(old, 1, 1), wrapped(old, 1, -1),
                                              wrapped(old, 2, 0), 1ll << 31, 1ll << 62, kMax64});
            m.what += ".shape[" + std::to_string(dim) + "] = " + std::to_string(t.shape[dim]);
            m.category = "shape";
            if (t.shape[dim] != old && (a.tied >> dim & 1) && dim < t.rank) m.kind = Kind::Conditional;
            m.names.clear();  // a refusal may name whichever argument the new extent disagrees with
            break;
        }
        case 7: {
            const int64_t old = t.strides[dim];
            t.strides[dim] = rng.pick<int64_t>(
                {-1, kMin64, 0, 1, wrapped(old, 1, 1), wrapped(old, 2, 0), wrapped(old, 1, -1), 1ll << 40, kMax64});
            m.what += ".strides[" + std::to_string(dim) + "] = " + std::to_string(t.strides[dim]);
            m.category = "stride";
            break;
        }
        case 8:  // extreme extents: the byte offset arithmetic must not overflow
            t.shape[dim] = rng.pick<int64_t>({1ll << 40, 1ll << 62, kMax64, kMax64 - 1});
            t.strides[dim] = rng.pick<int64_t>({0, 1, 1ll << 40, 1ll << 62, kMax64});
            if (rng.chance(0.5)) {
                const int other = static_cast<int>(rng.range(0, rank - 1));
                t.shape[other] = rng.pick<int64_t>({1ll << 62, kMax64});
                t.strides[other] = rng.pick<int64_t>({1ll << 62, kMax64});
            }
            m.what += " shape " + dims_string(t, false) + " strides " + dims_string(t, true);
            m.category = "extreme extent";
            m.names.clear();
            break;
        case 9:
            t.data = nullptr;
            m.what += ".data = null";
            m.category = "null data";
            break;
        case 10: {  // misaligned: the same bytes, 1 to 3 bytes past an aligned address
            const int64_t offset = rng.range(1, 3);
            c.relocate(a, offset, a.avail);
            m.what += ".data misaligned by " + std::to_string(offset);
            m.category = "misaligned data";
            break;
        }
        default: {  // a buffer shorter than the view: exactly size_bytes are allocated
            const int64_t extent = span_bytes(t);
            const int64_t size =
                rng.pick<int64_t>({wrapped(extent, 1, -1), extent / 2, 0, -1, kMin64, wrapped(extent, 1, -4)});
            if (size >= 0 && size < a.avail) c.relocate(a, 0, size);
            t.size_bytes = size;
            m.what += ".size_bytes = " + std::to_string(size) + " (extent " + std::to_string(extent) + ")";
            m.category = "short buffer";
        }
    }
    return m;
}

// Puts `out` partly over `other` (refused unless the pair may be the very same view, which this never makes).
bool mutate_overlap(Case &c, Rng &rng, Applied *m) {
    std::vector<std::pair<Arg *, Arg *>> usable;
    for (const auto &[out, other] : c.overlaps)
        if (out->present && other->present && span_bytes(out->t) > 0 && span_bytes(other->t) > 0)
            usable.push_back({out, other});
    if (usable.empty()) return false;
    auto [out, other] = usable[rng.next() % usable.size()];
    const int64_t in_extent = span_bytes(other->t), out_extent = span_bytes(out->t);
    const bool same_view_allowed = c.in_place.count({out, other}) > 0;
    const int64_t slots = (in_extent - 1) / 8;  // 8-byte aligned offsets inside `other`
    if (same_view_allowed && slots == 0) return false;
    const int64_t delta = 8 * rng.range(same_view_allowed ? 1 : 0, slots);
    const int64_t total = std::max(in_extent, delta + out_extent);
    const int block = c.new_block(total);
    char *raw = c.blocks[block].raw;
    std::memcpy(raw, other->t.data, static_cast<size_t>(in_extent));
    for (int64_t i = 0; i < out_extent; ++i) raw[delta + i] = static_cast<char>(rng.next());
    other->t.data = raw;
    other->block = block;
    other->avail = total;
    other->t.size_bytes = in_extent;
    out->t.data = raw + delta;
    out->block = block;
    out->avail = total - delta;
    out->t.size_bytes = out_extent;
    *m = {Kind::Conditional,
          out->label() + " overlaps " + other->label() + " at byte " + std::to_string(delta),
          {names_of(*out), names_of(*other)}};
    return true;
}

bool mutate_groups(Case &c, Rng &rng, Applied *m) {
    if (c.groups.empty()) return false;
    Groups &g = c.groups[rng.next() % c.groups.size()];
    *m = {Kind::Reject, g.name, {{quoted(g.name)}}};
    switch (rng.range(0, 4)) {
        case 0:
            g.present = false;
            m->what += " = null";
            break;
        case 1:
            g.weights_null = true;
            m->what += ".weights = null";
            break;
        case 2:
            g.scales_null = true;
            m->what += ".scales = null";
            break;
        case 3:
            g.count = rng.pick<int64_t>({0, -1, kMin64, MOE4J_MAX_WEIGHT_GROUPS + 1, kMax64});
            m->what += ".count = " + std::to_string(g.count);
            break;
        default:
            if (g.count < 2) return false;
            g.count -= 1;
            m->kind = Kind::Field;
            m->what += ".count = " + std::to_string(g.count) + " (one group fewer)";
    }
    return true;
}

// ------------------------------------------------------------------------------------------------ judging a call

struct Tally {
    int64_t calls = 0, rejected = 0, accepted = 0;
};

struct Run {
    uint64_t seed = 0;
    int64_t iteration = 0;
    int64_t findings = 0;
    bool verbose = false;
    std::map<std::string, Tally> per_function;
    std::map<std::string, int64_t> mutations, verdicts;  // kernel calls: mutations applied, what the ABI required
    Tally total;
};

Run *g_run = nullptr;  // for the crash and timeout handlers

constexpr int kReported = 20;  // findings printed in full

void report(Run &run, const std::string &fn, const std::string &what, const std::string &problem, moe4j_status s,
            const std::string &message) {
    ++run.findings;
    if (run.findings > kReported) return;
    if (run.iteration < 0)
        std::printf("FINDING in the regression checks (run_regressions, before every run):\n");
    else
        std::printf("FINDING at iteration %" PRId64 " (reproduce: ./moe4j fuzz abi --seed %" PRIu64 " --from %" PRId64
                    " --iterations %" PRId64 "):\n",
                    run.iteration, run.seed, run.iteration, run.iteration + 1);
    std::printf("  %s(%s)\n  %s\n  status %d, message \"%s\"\n", fn.c_str(), what.c_str(), problem.c_str(), s,
                message.c_str());
    std::fflush(stdout);
}

// Checks a call's status and message against what the ABI promises. `documented` are the function's argument names.
// Returns the problem, or "".
std::string judge(const char *fn, const std::vector<std::string> &documented, moe4j_status s, bool must_reject,
                  bool must_pass, const Names &names, const std::string &message) {
    if (s == MOE4J_ERROR_INTERNAL) return "MOE4J_ERROR_INTERNAL (a bug by the ABI's own definition)";
    if (s < MOE4J_OK || s > MOE4J_ERROR_INTERNAL) return "status outside moe4j_status_code";
    if (s == MOE4J_OK) {
        if (must_reject) return "accepted a call the ABI says must be refused";
        if (!message.empty()) return "moe4j_last_error() is not \"\" after a successful call";
        return "";
    }
    if (must_pass) return "refused a valid call";
    if (s != MOE4J_ERROR_INVALID_ARGUMENT && s != MOE4J_ERROR_UNSUPPORTED)
        return "refused with a status other than INVALID_ARGUMENT or UNSUPPORTED";
    if (message.rfind(std::string(fn) + ": ", 0) != 0) return "the message does not start with the function's name";
    const auto has_all = [&](const std::vector<std::string> &parts) {
        for (const std::string &p : parts)
            if (message.find(p) == std::string::npos) return false;
        return true;
    };
    if (!names.empty()) {
        for (const auto &alternative : names)
            if (has_all(alternative)) return "";
        std::string wanted;
        for (const auto &alternative : names) {
            std::string all;
            for (const std::string &p : alternative) all += (all.empty() ? "" : " and ") + p;
            wanted += (wanted.empty() ? "" : ", or ") + all;
        }
        return "the message does not name the argument (" + wanted + ")";
    }
    for (const std::string &name : documented)
        if (message.find(quoted(name)) != std::string::npos) return "";
    return "the message names none of the function's arguments";
}

void count(Run &run, const std::string &fn, moe4j_status s) {
    for (Tally *t : {&run.per_function[fn], &run.total}) {
        ++t->calls;
        ++(s == MOE4J_OK ? t->accepted : t->rejected);
    }
    ++run.per_function["moe4j_last_error"].calls;  // every judged call reads its message (not counted in the total)
}

// One kernel entry point: a valid call, mutated `mutations` times, run on ctx.
void run_kernel_case(Run &run, Rng &rng, const EntryPoint &entry, moe4j_context *ctx) {
    Case c;
    entry.build(c, rng);
    const int mutations = rng.chance(0.1) ? 0 : rng.chance(0.75) ? 1 : static_cast<int>(rng.range(2, 3));
    // Order: overlaps and index values first (they need valid descriptors), then scalars, groups and fields.
    std::vector<int> plan;
    for (int i = 0; i < mutations; ++i) {
        int kind = static_cast<int>(rng.range(0, 99));
        plan.push_back(kind < 10   ? 0
                       : kind < 22 ? 1
                       : kind < 30 ? 2
                       : kind < 35 ? 3
                       : kind < 37 ? 4
                       : kind < 40 ? 5
                                   : 6);
    }
    std::sort(plan.begin(), plan.end());
    std::vector<Applied> applied;
    bool null_ctx = false, overlapped = false;
    for (int kind : plan) {
        Applied m{Kind::Field, "", {}};
        bool done = false;
        if (kind == 0 && !overlapped) done = overlapped = mutate_overlap(c, rng, &m);
        if (kind == 1 && !c.tables.empty()) {
            const Mutator &t = c.tables[rng.next() % c.tables.size()];
            std::string what;
            if ((done = t.apply(rng, &what))) m = {Kind::Conditional, what, {{quoted(t.name)}}};
        }
        if (kind == 2 && !c.scalars.empty()) {
            const Mutator &s = c.scalars[rng.next() % c.scalars.size()];
            std::string what;
            done = true;
            m = {s.apply(rng, &what) ? Kind::Reject : Kind::Field, what, {{quoted(s.name)}}};
        }
        if (kind == 3) done = mutate_groups(c, rng, &m);
        if (kind == 4) {
            null_ctx = done = true;
            m = {Kind::Reject, "ctx = null", {{"'ctx'"}}};
        }
        if (kind == 5) {  // garbage in the unused shape and stride slots, or an optional argument left out
            std::vector<Arg *> candidates;
            for (Arg &a : c.args)
                if (!a.hidden && a.present && (a.optional || a.t.rank < MOE4J_MAX_RANK)) candidates.push_back(&a);
            if (!candidates.empty()) {
                Arg &a = *candidates[rng.next() % candidates.size()];
                done = true;
                if (a.optional && rng.chance(0.5)) {
                    a.present = false;
                    m = {Kind::Field, a.label() + " = null (optional)", {}};
                } else {
                    for (int i = std::max(a.t.rank, 0); i < MOE4J_MAX_RANK; ++i) {
                        a.t.shape[i] = static_cast<int64_t>(rng.next());
                        a.t.strides[i] = -static_cast<int64_t>(rng.next() >> 1);
                    }
                    m = {Kind::Neutral, a.label() + ": garbage in the unused shape and stride slots", {}};
                }
            }
        }
        if (done) {
            static const char *const kCategories[] = {"overlap",       "index value", "scalar",
                                                      "weight groups", "null ctx",    "unused slots / optional"};
            m.category = kCategories[kind];
            applied.push_back(std::move(m));
        }
    }
    // Field mutations last (also in place of a planned mutation this case has nothing for).
    while (static_cast<int>(applied.size()) < mutations) {
        std::vector<Arg *> candidates;
        for (Arg &a : c.args)
            if (!a.hidden && a.present) candidates.push_back(&a);
        if (candidates.empty()) break;  // every descriptor is already null
        applied.push_back(mutate_field(c, *candidates[rng.next() % candidates.size()], rng));
    }

    // What the ABI requires of this call.
    int active = 0;
    bool must_reject = false;
    const Applied *single = nullptr;
    for (const Applied &m : applied) {
        if (m.kind == Kind::Neutral) continue;
        ++active;
        single = &m;
        must_reject |= m.kind == Kind::Reject;
    }
    // Groups past a smaller (valid) count are not arguments of the call.
    std::set<const Arg *> ignored;
    for (const Groups &g : c.groups)
        for (size_t i = 0; i < g.weights.size(); ++i)
            if (g.count >= 1 && static_cast<int64_t>(i) >= g.count) ignored.insert({g.weights[i], g.scales[i]});
    Names local;
    for (const Arg &a : c.args)
        if (!a.hidden && !ignored.count(&a) && !a.problem().empty()) local.push_back(names_of(a));
    const Names crossed = local.empty() && c.cross ? c.cross() : Names{};
    must_reject |= !local.empty() || !crossed.empty() || (active == 1 && single->kind == Kind::Conditional);
    Names names;
    if (active == 1) names = single->kind == Kind::Field ? (local.empty() ? crossed : local) : single->names;

    for (Block &b : c.blocks) b.before.assign(b.raw, b.raw + b.size);
    std::set<int> written;
    for (const Arg &a : c.args)
        if (a.output && a.present && !a.hidden) written.insert(a.block);

    std::string what;
    for (const Applied &m : applied) what += (what.empty() ? "" : "; ") + m.what;
    if (what.empty()) what = "valid";
    if (run.verbose) {  // before the call, so that a crash shows what it was given
        std::printf("%" PRId64 " %s(%s)\n", run.iteration, c.fn, what.c_str());
        for (const Arg &a : c.args)
            if (!a.hidden)
                std::printf("    %s: %s dtype %d rank %d shape %s strides %s size %" PRId64 "%s\n", a.label().c_str(),
                            a.present ? "" : "(null)", a.t.dtype, a.t.rank, dims_string(a.t, false).c_str(),
                            dims_string(a.t, true).c_str(), a.t.size_bytes, a.problem().empty() ? "" : " (invalid)");
        std::fflush(stdout);
    }
    const moe4j_status s = c.call(null_ctx ? nullptr : ctx);
    const std::string message = moe4j_last_error();
    count(run, c.fn, s);
    for (const Applied &m : applied) ++run.mutations[m.category];
    ++run.verdicts[active == 0 ? "valid, must succeed" : must_reject ? "must be refused" : "either"];

    std::string problem = judge(c.fn, c.names, s, must_reject, active == 0, names, message);
    for (size_t i = 0; problem.empty() && i < c.blocks.size(); ++i) {
        const Block &b = c.blocks[i];
        if (s == MOE4J_OK && written.count(static_cast<int>(i))) continue;
        if (b.size > 0 && std::memcmp(b.before.data(), b.raw, static_cast<size_t>(b.size)) != 0)
            problem = s == MOE4J_OK ? "an accepted call wrote memory of an input" : "a refused call wrote memory";
    }
    if (run.verbose) std::printf("  -> %d %s\n", s, message.c_str());
    if (!problem.empty()) report(run, c.fn, what, problem, s, message);
}

// ------------------------------------------------------------------------------------------------ the other entry
// points

// Calls fn through `call`, judges it, and checks that the bytes of `outputs` are unchanged when it was refused.
void run_plain(Run &run, const char *fn, const std::vector<std::string> &documented, const std::string &what,
               bool must_reject, const Names &names, const std::vector<std::pair<void *, size_t>> &outputs,
               const std::function<moe4j_status()> &call, const std::function<std::string()> &after_ok = nullptr) {
    std::vector<std::vector<char>> before;
    for (const auto &[p, n] : outputs) before.emplace_back(static_cast<char *>(p), static_cast<char *>(p) + n);
    const moe4j_status s = call();
    const std::string message = moe4j_last_error();
    count(run, fn, s);
    std::string problem = judge(fn, documented, s, must_reject, !must_reject && names.empty(), names, message);
    if (problem.empty() && s != MOE4J_OK)
        for (size_t i = 0; i < outputs.size(); ++i)
            if (outputs[i].second > 0 && std::memcmp(before[i].data(), outputs[i].first, outputs[i].second) != 0)
                problem = "a refused call wrote an output";
    if (problem.empty() && s == MOE4J_OK && after_ok) problem = after_ok();
    if (run.verbose) std::printf("%" PRId64 " %s(%s): %d %s\n", run.iteration, fn, what.c_str(), s, message.c_str());
    if (!problem.empty()) report(run, fn, what, problem, s, message);
}

moe4j_context *const kSentinel = reinterpret_cast<moe4j_context *>(uintptr_t{0x5EED});

void fuzz_context_create(Run &run, Rng &rng) {
    const char *fn = "moe4j_context_create";
    const std::vector<std::string> documented = {"options", "out"};
    moe4j_context_options o{MOE4J_BACKEND_CPU, 0, static_cast<int32_t>(rng.range(0, 2)),
                            static_cast<int32_t>(rng.range(-1, 3)), rng.chance(0.5) ? MOE4J_CONTEXT_REPRODUCIBLE : 0};
    moe4j_context *out = kSentinel;
    bool null_options = false, null_out = false;
    std::string what = "valid options";
    Names names = {{"'options'"}};
    switch (rng.range(0, 8)) {
        case 0:
            o.backend = static_cast<int32_t>(rng.pick<int64_t>({-1, 2, 99, kMin32}));
            what = "backend";
            break;
        case 1:  // libmoe4j has no CUDA backend: refused as unsupported (the CUDA backend itself cannot run here)
            o.backend = MOE4J_BACKEND_CUDA;
            what = "backend CUDA";
            break;
        case 2:
            o.threads = static_cast<int32_t>(rng.pick<int64_t>({-1, 1025, kMin32, kMax32}));
            what = "threads";
            break;
        case 3:
            o.max_isa = static_cast<int32_t>(rng.pick<int64_t>({-2, 4, 99, kMin32}));
            what = "max_isa";
            break;
        case 4:
            o.flags = static_cast<int32_t>(rng.pick<int64_t>({4, 8, -1, kMin32, MOE4J_CONTEXT_SIMPLE_KERNELS}));
            what = "flags";
            break;
        case 5:
            o.device = static_cast<int32_t>(rng.pick<int64_t>({1, -1, kMax32}));
            what = "device";
            break;
        case 6:
            null_options = true;
            what = "options = null";
            break;
        case 7:
            null_out = true;
            what = "out = null";
            names = {{"'out'"}};
            break;
        default: names.clear();
    }
    what += " (backend " + std::to_string(o.backend) + ", device " + std::to_string(o.device) + ", threads " +
            std::to_string(o.threads) + ", max_isa " + std::to_string(o.max_isa) + ", flags " +
            std::to_string(o.flags) + ")";
    run_plain(
        run, fn, documented, what, !names.empty(), names, {{&out, sizeof out}},
        [&] { return moe4j_context_create(null_options ? nullptr : &o, null_out ? nullptr : &out); },
        [&]() -> std::string {
            moe4j_context_info info{};
            if (moe4j_context_query(out, &info) != MOE4J_OK) return "a created context cannot be queried";
            count(run, "moe4j_context_query", MOE4J_OK);
            const int32_t threads = o.threads == 0 ? info.threads : o.threads;
            std::string problem;
            if (info.backend != MOE4J_BACKEND_CPU || info.threads != threads || info.flags != o.flags ||
                (o.max_isa >= 0 && info.isa > o.max_isa))
                problem = "moe4j_context_query does not report the options the context was created with";
            if (moe4j_context_destroy(out) != MOE4J_OK) problem = "moe4j_context_destroy failed";
            count(run, "moe4j_context_destroy", MOE4J_OK);
            return problem;
        });
}

void fuzz_misc(Run &run, Rng &rng, moe4j_context *ctx) {
    switch (rng.range(0, 10)) {
        case 0: {
            moe4j_capabilities caps{};
            std::memset(&caps, 0xA5, sizeof caps);
            const bool null_out = rng.chance(0.4);
            run_plain(
                run, "moe4j_query_capabilities", {"out"}, null_out ? "out = null" : "valid", null_out,
                null_out ? Names{{"'out'"}} : Names{}, {{&caps, sizeof caps}},
                [&] { return moe4j_query_capabilities(null_out ? nullptr : &caps); },
                [&]() -> std::string {
                    return caps.abi_version > 0 && caps.cpu_isa >= MOE4J_ISA_SCALAR &&
                                   caps.cpu_isa <= MOE4J_ISA_AVX512_BF16 && caps.cuda_compiled == 0 &&
                                   caps.cpu_threads >= 1
                               ? ""
                               : "implausible capabilities";
                });
            break;
        }
        case 1:
        case 2: fuzz_context_create(run, rng); break;
        case 3: {
            const int which = static_cast<int>(rng.range(0, 2));
            moe4j_context_info info;
            std::memset(&info, 0xA5, sizeof info);
            run_plain(run, "moe4j_context_query", {"ctx", "out"},
                      which == 0   ? "ctx = null"
                      : which == 1 ? "out = null"
                                   : "valid",
                      which < 2,
                      which == 0   ? Names{{"'ctx'"}}
                      : which == 1 ? Names{{"'out'"}}
                                   : Names{},
                      {{&info, sizeof info}},
                      [&] { return moe4j_context_query(which == 0 ? nullptr : ctx, which == 1 ? nullptr : &info); });
            break;
        }
        case 4:
        case 5: {
            int32_t needed = 0;
            moe4j_context_kernel_variants(ctx, nullptr, 0, &needed);
            count(run, "moe4j_context_kernel_variants", MOE4J_OK);
            const int which = static_cast<int>(rng.range(0, 5));
            int32_t capacity = needed + static_cast<int32_t>(rng.range(0, 2));
            bool null_out = false, null_count = false, null_ctx = false;
            Names names;
            std::string what = "valid";
            if (which == 0) {
                null_count = true;
                names = {{"'count'"}};
                what = "count = null";
            } else if (which == 1) {
                capacity = static_cast<int32_t>(rng.pick<int64_t>({-1, kMin32}));
                names = {{"'capacity'"}};
                what = "capacity = " + std::to_string(capacity);
            } else if (which == 2 && needed > 0) {
                capacity = static_cast<int32_t>(rng.range(0, needed - 1));
                names = {{"'capacity'"}};
                what = "capacity = " + std::to_string(capacity) + " < " + std::to_string(needed);
            } else if (which == 3) {
                null_out = true;
                capacity = std::max(capacity, 1);
                names = {{"'out'"}};
                what = "out = null, capacity " + std::to_string(capacity);
            } else if (which == 4) {
                null_ctx = true;
                names = {{"'ctx'"}};
                what = "ctx = null";
            }
            // exactly `capacity` entries, so writing past them is caught
            const size_t entries = static_cast<size_t>(std::max(capacity, 0));
            std::unique_ptr<moe4j_kernel_variant, decltype(&std::free)> block(
                static_cast<moe4j_kernel_variant *>(
                    std::malloc(std::max<size_t>(entries, 1) * sizeof(moe4j_kernel_variant))),
                &std::free);
            moe4j_kernel_variant *storage = block.get();
            std::memset(storage, 0xA5, entries * sizeof(moe4j_kernel_variant));
            int32_t written = -12345;
            run_plain(
                run, "moe4j_context_kernel_variants", {"ctx", "out", "capacity", "count"}, what, !names.empty(), names,
                {{storage, entries * sizeof(moe4j_kernel_variant)}, {&written, sizeof written}},
                [&] {
                    return moe4j_context_kernel_variants(null_ctx ? nullptr : ctx, null_out ? nullptr : storage,
                                                         capacity, null_count ? nullptr : &written);
                },
                [&]() -> std::string {
                    if (written != needed) return "the count differs from the size asked before";
                    for (int32_t i = 0; i < written; ++i)
                        if (storage[i].calls <= 0 ||
                            std::memchr(storage[i].kernel, 0, sizeof storage[i].kernel) == nullptr)
                            return "an implausible entry";
                    return "";
                });
            break;
        }
        case 6: {
            const bool null_ctx = rng.chance(0.5);
            run_plain(run, "moe4j_context_reset_kernel_variants", {"ctx"}, null_ctx ? "ctx = null" : "valid", null_ctx,
                      null_ctx ? Names{{"'ctx'"}} : Names{}, {},
                      [&] { return moe4j_context_reset_kernel_variants(null_ctx ? nullptr : ctx); });
            break;
        }
        case 7:
        case 8: {
            const int which = static_cast<int>(rng.range(0, 4));
            int64_t bytes = rng.range(1, 4096);
            void *out = reinterpret_cast<void *>(uintptr_t{0x5EED});
            Names names;
            std::string what = "bytes = " + std::to_string(bytes);
            bool huge = false;
            if (which == 0) {
                bytes = rng.pick<int64_t>({0, -1, -64, kMin64});
                names = {{"'bytes'"}};
                what = "bytes = " + std::to_string(bytes);
            } else if (which == 1) {
                names = {{"'out'"}};
                what = "out = null";
            } else if (which == 2) {
                names = {{"'ctx'"}};
                what = "ctx = null";
            } else if (which == 3) {  // more than any machine has: out of memory (or refused), never a crash
                // (sizes that reach the allocator are rarer: under AddressSanitizer each prints a warning)
                bytes = rng.chance(0.1) ? rng.pick<int64_t>({1ll << 62, (1ll << 62) + 1})
                                        : rng.pick<int64_t>({kMax64, kMax64 - 1, kMax64 - 62});
                huge = true;
                what = "bytes = " + std::to_string(bytes);
            }
            std::vector<std::pair<void *, size_t>> outputs = {{&out, sizeof out}};
            std::vector<char> before(sizeof out);
            std::memcpy(before.data(), &out, sizeof out);
            const moe4j_status s = moe4j_alloc(which == 2 ? nullptr : ctx, bytes, which == 1 ? nullptr : &out);
            const std::string message = moe4j_last_error();
            count(run, "moe4j_alloc", s);
            std::string problem;
            if (huge) {
                if (s == MOE4J_OK) {
                    moe4j_free(ctx, out);
                } else if (s != MOE4J_ERROR_OUT_OF_MEMORY && s != MOE4J_ERROR_INVALID_ARGUMENT) {
                    problem = "neither OUT_OF_MEMORY nor INVALID_ARGUMENT for an impossible size";
                } else if (message.rfind("moe4j_alloc: ", 0) != 0) {
                    problem = "the message does not start with the function's name";
                } else if (std::memcmp(before.data(), &out, sizeof out) != 0) {
                    problem = "a refused call wrote its output";
                }
            } else {
                problem =
                    judge("moe4j_alloc", {"ctx", "bytes", "out"}, s, !names.empty(), names.empty(), names, message);
                if (problem.empty() && s != MOE4J_OK && std::memcmp(before.data(), &out, sizeof out) != 0)
                    problem = "a refused call wrote its output";
                if (problem.empty() && s == MOE4J_OK) {
                    if (out == nullptr || reinterpret_cast<uintptr_t>(out) % 64 != 0) {
                        problem = "allocated memory is not 64-byte aligned";
                    } else {
                        std::memset(out, 0x5A, static_cast<size_t>(bytes));  // every byte is usable
                        const moe4j_status f = moe4j_free(ctx, out);
                        count(run, "moe4j_free", f);
                        if (f != MOE4J_OK) problem = "moe4j_free failed on memory from moe4j_alloc";
                    }
                }
            }
            if (run.verbose)
                std::printf("%" PRId64 " moe4j_alloc(%s): %d %s\n", run.iteration, what.c_str(), s, message.c_str());
            if (!problem.empty()) report(run, "moe4j_alloc", what, problem, s, message);
            break;
        }
        case 9: {
            // A refused fault names its argument; a valid one is armed and disarmed at once, so the calls after it
            // run normally.
            const int which = static_cast<int>(rng.range(0, 4));
            int32_t fault =
                rng.pick<int32_t>({MOE4J_FAULT_ALLOCATION, MOE4J_FAULT_TASK_OUT_OF_MEMORY, MOE4J_FAULT_TASK_EXCEPTION});
            int64_t n = rng.range(1, 8);
            Names names;
            std::string what = "valid";
            if (which == 0) {
                names = {{"'ctx'"}};
                what = "ctx = null";
            } else if (which == 1) {
                fault = rng.pick<int32_t>({-1, 4, 99, INT32_MIN});
                names = {{"'fault'"}};
                what = "fault = " + std::to_string(fault);
            } else if (which == 2) {
                n = fault == MOE4J_FAULT_ALLOCATION ? rng.pick<int64_t>({0, -1, kMin64})
                                                    : rng.pick<int64_t>({-1, kMin64});
                names = {{"'n'"}};
                what = "n = " + std::to_string(n);
            } else if (which == 3) {
                fault = MOE4J_FAULT_NONE;
                n = rng.pick<int64_t>({1, -1, kMax64});
                names = {{"'n'"}};
                what = "MOE4J_FAULT_NONE with n = " + std::to_string(n);
            }
            run_plain(run, "moe4j_context_inject_fault", {"ctx", "fault", "n"}, what, !names.empty(), names, {},
                      [&] { return moe4j_context_inject_fault(which == 0 ? nullptr : ctx, fault, n); });
            const moe4j_status off = moe4j_context_inject_fault(ctx, MOE4J_FAULT_NONE, 0);
            count(run, "moe4j_context_inject_fault", off);
            if (off != MOE4J_OK)
                report(run, "moe4j_context_inject_fault", "MOE4J_FAULT_NONE, 0", "disarming failed", off,
                       moe4j_last_error());
            break;
        }
        default: {
            const int which = static_cast<int>(rng.range(0, 3));
            if (which < 2) {
                const bool null_ctx = which == 0;
                run_plain(run, "moe4j_free", {"ctx", "ptr"}, null_ctx ? "ctx = null" : "ptr = null", null_ctx,
                          null_ctx ? Names{{"'ctx'"}} : Names{}, {},
                          [&] { return moe4j_free(null_ctx ? nullptr : ctx, nullptr); });
            } else {
                const bool null_ctx = which == 2;
                run_plain(run, "moe4j_synchronize", {"ctx"}, null_ctx ? "ctx = null" : "valid", null_ctx,
                          null_ctx ? Names{{"'ctx'"}} : Names{}, {},
                          [&] { return moe4j_synchronize(null_ctx ? nullptr : ctx); });
            }
            const bool destroy_null = rng.chance(0.3);
            if (destroy_null)
                run_plain(run, "moe4j_context_destroy", {"ctx"}, "ctx = null (does nothing)", false, {}, {},
                          [&] { return moe4j_context_destroy(nullptr); });
        }
    }
}

// ------------------------------------------------------------------------------------------------ regressions

// A descriptor of `bytes` bytes of host memory at data (shapes and strides as given, the rest zero).
moe4j_tensor view(void *data, int64_t bytes, int32_t dtype, std::initializer_list<int64_t> shape,
                  std::initializer_list<int64_t> strides) {
    moe4j_tensor t{};
    t.data = data;
    t.size_bytes = bytes;
    t.dtype = dtype;
    t.rank = static_cast<int32_t>(shape.size());
    t.device = MOE4J_HOST_MEMORY;
    int i = 0;
    for (int64_t v : shape) t.shape[i++] = v;
    i = 0;
    for (int64_t v : strides) t.strides[i++] = v;
    return t;
}

// The calls that found bugs, every run (iteration -1 in a finding). Each buffer is exactly as long as its descriptor.
void run_regressions(Run &run, moe4j_context *ctx) {
    run.iteration = -1;
    std::vector<char> a(4096), b(4096), c(4096), d(4096);
    float *f = reinterpret_cast<float *>(a.data());
    for (int i = 0; i < 64; ++i) f[i] = 1.0f;
    int32_t zero_index[8] = {0, 0, 0, 0, 0, 0, 0, 0};

    // extent_bytes overflowed __int128 for I64 [MAX, 10] strides [2^62, 1] (wrapping to a small extent): the view was
    // accepted, and the gather read row 0 only because the index said 0.
    moe4j_tensor src = view(a.data(), 80, MOE4J_I64, {kMax64, 10}, {1ll << 62, 1});
    moe4j_tensor index = view(zero_index, 8, MOE4J_I32, {2}, {1});
    moe4j_tensor dst = view(b.data(), 160, MOE4J_I64, {2, 10}, {10, 1});
    run_plain(run, "moe4j_gather_rows", {"src", "index", "dst"}, "src I64 [MAX, 10] strides [2^62, 1]", true,
              {{"'src'"}}, {{b.data(), 160}}, [&] { return moe4j_gather_rows(ctx, &src, &index, &dst); });

    // A zero-stride view of more than INT64_MAX elements is refused (the kernels count rows in int64); the scales'
    // ceil(rows / 128) overflowed before.
    moe4j_tensor q = view(a.data(), 128, MOE4J_E4M3, {kMax64, 128}, {0, 1});
    moe4j_tensor scales = view(c.data(), 4, MOE4J_F32, {1, 1}, {1, 1});
    moe4j_tensor out = view(d.data(), 512, MOE4J_F32, {1, 128}, {128, 1});
    run_plain(run, "moe4j_dequantize_fp8", {"q", "scales", "block_rows", "out"}, "q [MAX, 128] strides [0, 1]", true,
              {{"'q'"}}, {{d.data(), 512}}, [&] { return moe4j_dequantize_fp8(ctx, &q, &scales, 128, &out); });
    moe4j_tensor big = view(a.data(), 16, MOE4J_F32, {1ll << 40, 1ll << 40, 4}, {0, 0, 1});
    run_plain(run, "moe4j_gemm_nt", {"a", "b", "c", "d"}, "a [2^40, 2^40, 4] strides [0, 0, 1]", true, {{"'a'"}}, {},
              [&] { return moe4j_gemm_nt(ctx, &big, &big, nullptr, &big); });

    // The CPU MLA kernel divided by the number of (sequence, kv head) units: SIGFPE for a batch of 0.
    moe4j_tensor mq = view(a.data(), 0, MOE4J_BF16, {0, 1, 2, 61}, {122, 122, 61, 1});
    moe4j_tensor kcache = view(c.data(), 2 * 64 * 61, MOE4J_BF16, {1, 64, 1, 61}, {64 * 61, 61, 61, 1});
    moe4j_tensor table = view(zero_index, 0, MOE4J_I32, {0, 4}, {4, 1});
    moe4j_tensor lengths = view(zero_index, 0, MOE4J_I32, {0}, {1});
    moe4j_tensor mout = view(d.data(), 0, MOE4J_F32, {0, 1, 2, 38}, {76, 76, 38, 1});
    moe4j_tensor lse = view(b.data(), 0, MOE4J_F32, {0, 2, 1}, {2, 1, 1});
    run_plain(run, "moe4j_mla_decode", {"q"}, "a batch of 0 sequences", false, {}, {},
              [&] { return moe4j_mla_decode(ctx, &mq, &kcache, &table, &lengths, 0.125f, 1, &mout, &lse); });

    // RowView multiplied INT64_MAX strides of empty tensors by the element size (signed overflow).
    moe4j_tensor ga = view(a.data(), 0, MOE4J_BF16, {3, 0, 22}, {22, 66, 1});
    moe4j_tensor gb = view(b.data(), 3696, MOE4J_BF16, {3, 28, 22}, {616, 22, 1});
    moe4j_tensor gc = view(c.data(), 0, MOE4J_F32, {3, 0, 28}, {kMax64, 84, 1});
    moe4j_tensor gd = view(d.data(), 0, MOE4J_BF16, {3, 0, 28}, {28, 28, 1});
    run_plain(run, "moe4j_gemm_nt", {"a"}, "an empty c with stride MAX", false, {}, {},
              [&] { return moe4j_gemm_nt(ctx, &ga, &gb, &gc, &gd); });

    // moe4j_copy refused empty tensors whose strides were not the products of the extents (0 past a zero extent).
    moe4j_tensor e1 = view(a.data(), 0, MOE4J_F32, {2, 0, 3}, {3, 3, 1});
    moe4j_tensor e2 = view(b.data(), 0, MOE4J_F32, {2, 0, 3}, {0, 3, 1});
    run_plain(run, "moe4j_copy", {"src"}, "empty [2, 0, 3] with strides [3, 3, 1]", false, {}, {},
              [&] { return moe4j_copy(ctx, &e1, &e2); });

    // moe4j_alloc wrote *out = null before failing, and rounded INT64_MAX up with a signed overflow.
    for (const int64_t bytes : {kMax64, kMax64 - 62, int64_t{1} << 62}) {
        void *p = &run;
        const moe4j_status s = moe4j_alloc(ctx, bytes, &p);
        count(run, "moe4j_alloc", s);
        if (s == MOE4J_OK) moe4j_free(ctx, p);
        if (s != MOE4J_ERROR_OUT_OF_MEMORY || p != &run)
            report(run, "moe4j_alloc", "bytes = " + std::to_string(bytes),
                   "not OUT_OF_MEMORY with *out unchanged for an impossible size", s, moe4j_last_error());
    }
}

// ------------------------------------------------------------------------------------------------ the run

// Entry points the fuzzer calls; checked against the declarations in moe4j.h so that a new one cannot go unfuzzed.
std::set<std::string> fuzzed_entry_points() {
    std::set<std::string> all = {"moe4j_last_error",
                                 "moe4j_query_capabilities",
                                 "moe4j_context_create",
                                 "moe4j_context_destroy",
                                 "moe4j_context_query",
                                 "moe4j_context_kernel_variants",
                                 "moe4j_context_reset_kernel_variants",
                                 "moe4j_context_inject_fault",
                                 "moe4j_alloc",
                                 "moe4j_free",
                                 "moe4j_synchronize"};
    for (const EntryPoint &e : kernel_entry_points()) all.insert(e.name);
    return all;
}

// The functions moe4j.h declares, or an empty set (with a message) when it cannot be read.
std::set<std::string> declared_entry_points(const std::string &header) {
    std::ifstream in(header);
    std::set<std::string> names;
    if (!in) return names;
    std::stringstream text;
    text << in.rdbuf();
    const std::string s = text.str();
    // Declarations read "moe4j_status moe4j_name(" or "const char *moe4j_name(".
    for (const std::string return_type : {"moe4j_status ", "const char *"}) {
        for (size_t at = s.find(return_type + "moe4j_"); at != std::string::npos;
             at = s.find(return_type + "moe4j_", at + 1)) {
            const size_t begin = at + return_type.size();
            size_t end = begin;
            while (end < s.size() && (std::isalnum(static_cast<unsigned char>(s[end])) || s[end] == '_')) ++end;
            if (end < s.size() && s[end] == '(') names.insert(s.substr(begin, end - begin));
        }
    }
    return names;
}

void write_text(const char *s) {
    const ssize_t ignored = write(STDERR_FILENO, s, std::strlen(s));
    (void)ignored;
}

// Async-signal-safe: the iteration that was running when the process dies (sanitizer report, crash or hang).
void print_iteration(const char *why) {
    if (g_run == nullptr) return;
    char line[256];
    if (g_run->iteration < 0)
        std::snprintf(line, sizeof line, "\nfuzz abi: %s in the regression checks (run_regressions)\n", why);
    else
        std::snprintf(line, sizeof line,
                      "\nfuzz abi: %s at iteration %" PRId64 " (reproduce: ./moe4j fuzz abi --seed %" PRIu64
                      " --from %" PRId64 " --iterations %" PRId64 ")\n",
                      why, g_run->iteration, g_run->seed, g_run->iteration, g_run->iteration + 1);
    write_text(line);
}

extern "C" void on_fatal_signal(int sig) {
    print_iteration(sig == SIGALRM ? "a call ran longer than 30 s (a hang)" : "crashed");
    signal(sig, SIG_DFL);
    if (sig == SIGALRM) _exit(1);
    raise(sig);
}

#if defined(__SANITIZE_ADDRESS__)
extern "C" void on_sanitizer_death() { print_iteration("sanitizer report"); }
#endif

int usage(const char *why) {
    std::fprintf(stderr,
                 "fuzz abi: %s\nusage: moe4j_abi_fuzz [--iterations N] [--seed S] [--from I] [--header moe4j.h] "
                 "[--verbose]\n",
                 why);
    return 2;
}

}  // namespace

#if defined(__SANITIZE_ADDRESS__)
// moe4j_alloc of 2^62 bytes must come back as MOE4J_ERROR_OUT_OF_MEMORY, not abort the process.
extern "C" const char *__asan_default_options() { return "allocator_may_return_null=1"; }
#endif

int main(int argc, char **argv) {
    Run run;
    int64_t iterations = 1000, from = 0;
    bool seeded = false;
    std::string header;
#ifdef MOE4J_HEADER
    header = MOE4J_HEADER;
#endif
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool has_value = i + 1 < argc;
        char *end = nullptr;
        if (arg == "--verbose") {
            run.verbose = true;
        } else if (arg == "--header" && has_value) {
            header = argv[++i];
        } else if ((arg == "--iterations" || arg == "--from") && has_value) {
            const long long v = std::strtoll(argv[++i], &end, 10);
            if (*end != '\0' || v < 0) return usage(("bad value for " + arg).c_str());
            (arg == "--iterations" ? iterations : from) = v;
        } else if (arg == "--seed" && has_value) {
            run.seed = std::strtoull(argv[++i], &end, 10);
            if (*end != '\0') return usage("bad value for --seed");
            seeded = true;
        } else {
            return usage(("unknown argument " + arg).c_str());
        }
    }
    if (!seeded)
        run.seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) % 1000000000;

    const std::set<std::string> declared = declared_entry_points(header), fuzzed = fuzzed_entry_points();
    if (declared.empty()) return usage(("cannot read the entry points of moe4j.h from '" + header + "'").c_str());
    std::vector<std::string> unfuzzed;
    for (const std::string &name : declared)
        if (!fuzzed.count(name)) unfuzzed.push_back(name);

    g_run = &run;
    signal(SIGSEGV, on_fatal_signal);
    signal(SIGBUS, on_fatal_signal);
    signal(SIGFPE, on_fatal_signal);
    signal(SIGILL, on_fatal_signal);
    signal(SIGABRT, on_fatal_signal);
    signal(SIGALRM, on_fatal_signal);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_set_death_callback(on_sanitizer_death);
    const char *build = "AddressSanitizer + UndefinedBehaviorSanitizer";
#else
    const char *build = "no sanitizers (run ./moe4j fuzz abi for the sanitized build)";
#endif

    // Contexts on every CPU path this machine has, one thread and two (with the reproducible flag).
    moe4j_capabilities caps{};
    if (moe4j_query_capabilities(&caps) != MOE4J_OK) return usage(moe4j_last_error());
    std::vector<moe4j_context *> contexts;
    for (int32_t isa = MOE4J_ISA_SCALAR; isa <= caps.cpu_isa + 1; ++isa) {
        const bool two = isa > caps.cpu_isa;
        const moe4j_context_options o{MOE4J_BACKEND_CPU, 0, two ? 2 : 1, two ? MOE4J_ISA_BEST : isa,
                                      two ? MOE4J_CONTEXT_REPRODUCIBLE : 0};
        moe4j_context *ctx = nullptr;
        if (moe4j_context_create(&o, &ctx) != MOE4J_OK) return usage(moe4j_last_error());
        contexts.push_back(ctx);
    }

    std::printf("fuzz abi: seed %" PRIu64 ", iterations %" PRId64 "..%" PRId64 ", %s, CPU paths 0..%d\n", run.seed,
                from, iterations, build, caps.cpu_isa);
    std::printf("  entry points: %zu declared in moe4j.h, all called here%s\n", declared.size(),
                unfuzzed.empty() ? "" : " EXCEPT the ones below");
    std::printf(
        "  not run here: the CUDA backend (libmoe4j has none: MOE4J_BACKEND_CUDA contexts are checked to be "
        "refused as unsupported, descriptors on a CUDA device as invalid or unsupported)\n");
    std::fflush(stdout);
    for (const std::string &name : unfuzzed) {
        ++run.findings;
        std::printf("FINDING: %s is declared in moe4j.h but the fuzzer does not call it\n", name.c_str());
    }

    run_regressions(run, contexts[0]);
    const auto &entries = kernel_entry_points();
    int total_weight = 0;
    for (const EntryPoint &e : entries) total_weight += e.weight;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = from; i < iterations; ++i) {
        run.iteration = i;
        Rng rng(run.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(i));
        moe4j_context *ctx = contexts[rng.next() % contexts.size()];
        alarm(kCallTimeoutSeconds);
        if (rng.chance(0.08)) {
            fuzz_misc(run, rng, ctx);
        } else {
            int pick = static_cast<int>(rng.range(0, total_weight - 1));
            size_t e = 0;
            while (pick >= entries[e].weight) pick -= entries[e++].weight;
            run_kernel_case(run, rng, entries[e], ctx);
        }
        alarm(0);
        if ((i + 1 - from) % 20000 == 0)
            std::printf("  %" PRId64 " iterations, %" PRId64 " calls, %" PRId64 " findings, %.0f s\n", i + 1 - from,
                        run.total.calls, run.findings,
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        std::fflush(stdout);
    }
    for (moe4j_context *ctx : contexts) moe4j_context_destroy(ctx);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    std::printf("  %-38s %9s %9s %9s\n", "entry point", "calls", "rejected", "accepted");
    for (const auto &[name, t] : run.per_function)
        std::printf("  %-38s %9" PRId64 " %9" PRId64 " %9" PRId64 "\n", name.c_str(), t.calls, t.rejected, t.accepted);
    for (const std::string &name : fuzzed)
        if (!run.per_function.count(name) && iterations - from >= 10000)
            std::printf("  (%s was not called in this run)\n", name.c_str());
    const auto print_tally = [](const char *title, const std::map<std::string, int64_t> &tally) {
        std::string line;
        for (const auto &[name, n] : tally) line += (line.empty() ? "" : ", ") + name + " " + std::to_string(n);
        std::printf("  %s: %s\n", title, line.c_str());
    };
    print_tally("kernel calls", run.verdicts);
    print_tally("mutations", run.mutations);
    std::printf("fuzz abi: seed %" PRIu64 ", %" PRId64 " calls, %" PRId64 " rejected, %" PRId64 " accepted, %" PRId64
                " findings, %.1f s\n",
                run.seed, run.total.calls, run.total.rejected, run.total.accepted, run.findings, seconds);
    g_run = nullptr;
    return run.findings == 0 ? 0 : 1;
}
