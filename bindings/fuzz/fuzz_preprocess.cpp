// libFuzzer target: libruntime's input checks and pre-processing (value
// checks, clipping, exact size or letterbox with its validity mask, scale).
//
// The first bytes are a header that picks the manifest's preprocess section
// and the graph's image input, and the caller's batch (shape, layout, pixel
// encoding); the rest are its pixels, repeated as needed. The manifest is
// written as JSON and read back through parse_manifest() and check_runnable(),
// so every configuration fed to the pre-processing is one a bundle can carry;
// then check_input() and preprocess() run as runtime_session_run() runs them.
//
// Header, one byte each (missing bytes read as 0):
//   flags    bit 0 letterbox (else exact), bit 1 append_mask (letterbox only),
//            bit 2 the batch is HWC (else CHW), bits 3-4 accepted_layouts
//            (CHW+HWC, CHW, HWC, HWC+CHW), bit 5 the graph's batch axis is
//            dynamic (else fixed to the batch), bit 6 pixels are raw float32
//            (else one byte each, mapped into the source range), bit 7 prescaled
//   range    % 6 picks source_range and scale, / 6 % 3 pad_value (low, high, middle)
//   channels the batch's channels, 1 + b % 6
//   accepted accepted_channels: bit i accepts i + 1 channels (none: the batch's)
//   reads    1 + b % 4 read_channels, then that many bytes: index b % fewest accepted
//   height, width           the batch's, 1 + b % 32
//   graph height, width     b % 33, 0 meaning the batch's
//   batch    1 + b % 3
//   extreme  from 'x' (0x78) up, to probe the checks: b % 10 says what the next
//            byte changes; 0-7: the batch's height, width, batch, channels, the
//            graph's height, width, both, the batch's height and width, to an
//            extreme size (% 8); 8: the layout, to b - 128; 9: the graph's fixed
//            batch, to 1 + b % 4
// Findings: crashes, sanitizer reports, leaks, exceptions other than
// runtime::detail::Error, and outputs the pre-processing cannot produce
// (values outside the scaled source range, a mask that is not the image's
// place on the canvas, a transform off the canvas).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "internal.hpp"

using namespace runtime::detail;
using nlohmann::json;

namespace {

class Bytes {
public:
    Bytes(const uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
    uint8_t next() { return p_ < end_ ? *p_++ : 0; }
    const uint8_t* rest() const { return p_; }
    std::size_t left() const { return std::size_t(end_ - p_); }

private:
    const uint8_t* p_;
    const uint8_t* end_;
};

[[noreturn]] void finding(const std::string& what) {
    std::fprintf(stderr, "fuzz_preprocess: %s\n", what.c_str());
    std::abort();
}

struct Range {
    double low, high, scale;
    bool ordinary;  // outputs are finite floats: the value oracle applies
};
const Range kRanges[] = {
    {0.0, 255.0, 1.0 / 255.0, true}, {0.0, 1.0, 1.0, true},       {0.0, 65535.0, 1.0 / 65535.0, true},
    {-1.0, 1.0, 0.5, true},          {0.0, 4095.0, 2.0 / 4095.0, true},
    // Finite in the manifest, beyond float32 in the pre-processing.
    {-1e300, 1e300, 1e300, false},
};

// Sizes the manifest parser accepts (positive int64) or the caller may pass.
const int64_t kExtremes[] = {0,
                             -1,
                             int64_t(1) << 20,
                             (int64_t(1) << 20) + 1,
                             int64_t(1) << 31,
                             int64_t(1) << 40,
                             std::numeric_limits<int64_t>::max(),
                             std::numeric_limits<int64_t>::min()};

// Most floats one batch may hold, in and out, to keep runs fast and small.
constexpr int64_t kMaxElements = int64_t(1) << 18;

bool small(std::initializer_list<int64_t> dims) {
    int64_t n = 1;
    for (int64_t d : dims) {
        if (d < 1 || d > kMaxElements || n * d > kMaxElements) return false;
        n *= d;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Bytes bytes(data, size);
    const uint8_t flags = bytes.next();
    const bool letterbox = flags & 1;
    const bool mask = letterbox && (flags & 2);
    int32_t layout = (flags & 4) ? RUNTIME_LAYOUT_HWC : RUNTIME_LAYOUT_CHW;
    static const std::vector<std::string> kLayouts[] = {{"CHW", "HWC"}, {"CHW"}, {"HWC"}, {"HWC", "CHW"}};
    const std::vector<std::string>& layouts = kLayouts[(flags >> 3) & 3];
    bool dynamic_batch = flags & 32;
    const bool raw_floats = flags & 64;
    const bool prescaled = flags & 128;

    const uint8_t range_byte = bytes.next();
    const Range& range = kRanges[range_byte % 6];
    const double pad_choices[] = {range.low, range.high, range.low + (range.high - range.low) / 2};
    const double pad = pad_choices[range_byte / 6 % 3];

    int64_t channels = 1 + bytes.next() % 6;
    std::vector<int64_t> accepted;
    const uint8_t accepted_bits = bytes.next();
    for (int64_t c = 1; c <= 6; ++c) {
        if (accepted_bits & (1 << (c - 1))) accepted.push_back(c);
    }
    if (accepted.empty()) accepted.push_back(channels);
    const int64_t fewest = *std::min_element(accepted.begin(), accepted.end());
    std::vector<int64_t> reads(1 + bytes.next() % 4);
    for (int64_t& r : reads) r = bytes.next() % fewest;

    int64_t height = 1 + bytes.next() % 32, width = 1 + bytes.next() % 32;
    const uint8_t gh = bytes.next() % 33, gw = bytes.next() % 33;
    int64_t graph_height = gh == 0 ? height : gh, graph_width = gw == 0 ? width : gw;
    int64_t batch = 1 + bytes.next() % 3;
    int64_t graph_batch = batch;
    const uint8_t extreme = bytes.next();
    if (extreme >= 0x78) {
        const uint8_t pick = bytes.next();
        const int64_t value = kExtremes[pick % 8];
        switch (extreme % 10) {
            case 0: height = value; break;
            case 1: width = value; break;
            case 2: batch = value; break;
            case 3:
                channels = value;
                if (value >= 1) accepted.push_back(value);
                break;
            case 4: graph_height = value; break;
            case 5: graph_width = value; break;
            case 6: graph_height = graph_width = value; break;
            case 7: height = width = value; break;
            case 8: layout = int32_t(pick) - 128; break;
            case 9:
                dynamic_batch = false;
                graph_batch = 1 + pick % 4;
                break;
        }
    }

    // The bundle: preprocess as picked, one full-image graph of that geometry.
    std::vector<std::string> names;
    for (std::size_t i = 0; i < reads.size(); ++i) names.push_back("c" + std::to_string(i));
    if (mask) names.push_back("mask");
    const int64_t graph_channels = int64_t(reads.size()) + (mask ? 1 : 0);
    const json batch_axis = dynamic_batch ? json("batch") : json(graph_batch);
    const json manifest_json = {
        {"schema_version", 2},
        {"family", "fuzz"},
        {"variant", "fuzz"},
        {"preprocess",
         {{"layout", "NCHW"},
          {"resize", letterbox ? "letterbox" : "exact"},
          {"height", graph_height},
          {"width", graph_width},
          {"read_channels", reads},
          {"channel_names", names},
          {"append_mask", mask},
          {"accepted_channels", accepted},
          {"accepted_layouts", layouts},
          {"source_range", {range.low, range.high}},
          {"scale", range.scale},
          {"pad_value", pad}}},
        {"postprocess", {{"kind", "heatmap"}, {"output", "heatmap"}, {"channel", 0}, {"range", {0.0, 1.0}}, {"threshold", 0.5}}},
        {"checkpoint", json::object()},
        {"producer", json::object()},
        {"graphs",
         {{{"file", "model.fp32.onnx"},
           {"layer", "full"},
           {"precision", "fp32"},
           {"mode", "fcn"},
           {"opset", 17},
           {"sha256", std::string(64, '0')},
           {"bytes", 1},
           {"inputs", {{{"name", "input"}, {"shape", {batch_axis, graph_channels, graph_height, graph_width}},
                        {"dtype", "float32"}, {"role", "image"}}}},
           {"outputs", {{{"name", "heatmap"}, {"shape", {"batch", 1, graph_height, graph_width}},
                         {"dtype", "float32"}, {"role", "heatmap"}}}}}}},
        {"default_graph", "model.fp32.onnx"},
    };
    Manifest manifest;
    try {
        manifest = parse_manifest(manifest_json.dump(), "fuzz/manifest.json", false);
        check_runnable(manifest, manifest.graphs.front(), "fuzz");
    } catch (const Error&) {
        return 0;  // a bundle libruntime refuses: nothing to pre-process
    }
    const Preprocess& pre = manifest.preprocess;
    const TensorSpec& image = manifest.graphs.front().inputs.front();
    const ImageGeometry graph{image.shape[1], image.shape[2], image.shape[3], image.shape[0]};  // make_session()

    runtime_input in{};
    in.struct_size = sizeof(in);
    in.batch = batch;
    in.channels = channels;
    in.height = height;
    in.width = width;
    in.layout = layout;
    in.prescaled = prescaled;
    runtime_transform t;
    try {
        t = check_input(in, pre, graph);
    } catch (const Error& error) {
        if (error.status() != RUNTIME_ERR_INVALID_INPUT && error.status() != RUNTIME_ERR_INVALID_ARGUMENT) {
            finding("check_input: status " + std::to_string(int(error.status())) + ": " + error.what());
        }
        return 0;
    }
    if (!(t.scale_x > 0 && t.scale_y > 0 && t.pad_x >= 0 && t.pad_y >= 0 && t.resized_width >= 1 &&
          t.resized_height >= 1 && t.pad_x + t.resized_width <= graph.width &&
          t.pad_y + t.resized_height <= graph.height && t.source_width == width && t.source_height == height)) {
        finding("transform off the canvas");
    }
    if (prescaled) return 0;  // the graph's tensor as given: nothing is pre-processed
    if (!small({batch, channels, height, width}) || !small({batch, graph.channels, graph.height, graph.width})) {
        return 0;
    }

    // The pixels: the rest of the input, repeated.
    const std::size_t count = std::size_t(batch * channels * height * width);
    std::vector<float> pixels(count, float(range.low));
    const uint8_t* rest = bytes.rest();
    const std::size_t left = bytes.left();
    const float specials[] = {std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY,
                              float(range.high + (range.high - range.low) * 0.01),
                              float(range.low - (range.high - range.low) * 0.01), 0.5f};
    if (raw_floats && left >= 4) {
        for (std::size_t i = 0; i < count; ++i) std::memcpy(&pixels[i], rest + (4 * i) % (left - left % 4), 4);
    } else if (!raw_floats && left > 0) {
        for (std::size_t i = 0; i < count; ++i) {
            const uint8_t b = rest[i % left];
            pixels[i] = b < 250 ? float(range.low + (range.high - range.low) * b / 249.0) : specials[b - 250];
        }
    }
    in.data = pixels.data();
    std::vector<float> out(std::size_t(batch * graph.channels * graph.height * graph.width));
    try {
        preprocess(in, pre, graph, t, out.data());
    } catch (const Error& error) {
        if (error.status() != RUNTIME_ERR_INVALID_INPUT) finding(std::string("preprocess: ") + error.what());
        return 0;
    }

    // What the pre-processing can produce: read channels in the scaled source
    // range (clipped values, bilinear weights in [0, 1], the pad value in range),
    // the mask 1 exactly where the image lies on the canvas.
    if (!range.ordinary) return 0;
    const float low = float(pre.source_low) * float(pre.scale), high = float(pre.source_high) * float(pre.scale);
    const std::size_t plane = std::size_t(graph.height * graph.width);
    for (int64_t b = 0; b < batch; ++b) {
        const float* tensor = out.data() + std::size_t(b * graph.channels) * plane;
        for (std::size_t k = 0; k < reads.size(); ++k) {
            for (std::size_t i = 0; i < plane; ++i) {
                const float v = tensor[k * plane + i];
                if (!(v >= low && v <= high)) {
                    finding("channel " + std::to_string(k) + " value " + std::to_string(v) + " outside " +
                            std::to_string(low) + ".." + std::to_string(high));
                }
            }
        }
        if (!mask) continue;
        const float* m = tensor + reads.size() * plane;
        for (int64_t y = 0; y < graph.height; ++y) {
            for (int64_t x = 0; x < graph.width; ++x) {
                const bool inside = y >= t.pad_y && y < t.pad_y + t.resized_height && x >= t.pad_x &&
                                    x < t.pad_x + t.resized_width;
                if (m[y * graph.width + x] != (inside ? 1.0f : 0.0f)) finding("mask does not mark the image");
            }
        }
    }
    return 0;
}
