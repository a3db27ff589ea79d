// Input checks and pre-processing as the manifest says: the C++ twin of the
// Python runtime's (runtime/_letterbox.py for the letterbox, numerically: same
// rounding, same taps, float64 sums, float32 result).
#include <algorithm>
#include <cmath>
#include <sstream>

#include "internal.hpp"

namespace runtime::detail {
namespace {

// Float files go through arithmetic in production; a rounding error of this
// size outside the source range is not a wrong scale (same as the Python runtime).
constexpr double kRangeTolerance = 1e-3;
// Sides beyond this are refused before any size arithmetic can overflow.
constexpr int64_t kMaxSide = int64_t(1) << 20;

std::string shape_text(const runtime_input& in) {
    std::ostringstream text;
    if (in.layout == RUNTIME_LAYOUT_HWC) {
        text << "(" << in.batch << ", " << in.height << ", " << in.width << ", " << in.channels << ") HWC";
    } else {
        text << "(" << in.batch << ", " << in.channels << ", " << in.height << ", " << in.width << ") CHW";
    }
    return text.str();
}

std::string number(double value) {
    std::ostringstream text;
    text << value;
    return text.str();
}

std::string size_text(int64_t height, int64_t width) { return std::to_string(height) + "x" + std::to_string(width); }

runtime_transform identity(int64_t height, int64_t width) { return {1.0, 1.0, 0, 0, width, height, width, height}; }

// Bilinear source indices and weights along one axis (half-pixel centres, clamped).
struct Taps {
    std::vector<int64_t> low, high;
    std::vector<double> weight;
};

Taps taps(int64_t size_in, int64_t size_out) {
    Taps t;
    const double ratio = double(size_in) / double(size_out);
    for (int64_t i = 0; i < size_out; ++i) {
        const double pos = std::clamp((double(i) + 0.5) * ratio - 0.5, 0.0, double(size_in - 1));
        const int64_t low = int64_t(std::floor(pos));
        t.low.push_back(low);
        t.high.push_back(std::min(low + 1, size_in - 1));
        t.weight.push_back(pos - double(low));
    }
    return t;
}

}  // namespace

runtime_transform letterbox_fit(int64_t source_height, int64_t source_width, int64_t height, int64_t width) {
    const double s = std::min(double(width) / double(source_width), double(height) / double(source_height));
    // floor(x + 0.5): round half up, as runtime/_letterbox.py does.
    const int64_t new_w = std::min(width, std::max<int64_t>(1, int64_t(std::floor(double(source_width) * s + 0.5))));
    const int64_t new_h = std::min(height, std::max<int64_t>(1, int64_t(std::floor(double(source_height) * s + 0.5))));
    return {double(new_w) / double(source_width), double(new_h) / double(source_height), (width - new_w) / 2,
            (height - new_h) / 2, new_w, new_h, source_width, source_height};
}

void resize_bilinear(const float* src, int64_t h, int64_t w, float* dst, int64_t dst_stride, int64_t out_h,
                     int64_t out_w) {
    if (h == out_h && w == out_w) {
        for (int64_t y = 0; y < h; ++y) std::copy_n(src + y * w, w, dst + y * dst_stride);
        return;
    }
    const Taps ty = taps(h, out_h), tx = taps(w, out_w);
    std::vector<double> row(static_cast<std::size_t>(w));
    for (int64_t y = 0; y < out_h; ++y) {
        // Rows first, then columns: the order of numpy's float64 sums in resize_bilinear().
        const float* a = src + ty.low[y] * w;
        const float* b = src + ty.high[y] * w;
        const double wy = ty.weight[y];
        for (int64_t x = 0; x < w; ++x) row[x] = double(a[x]) * (1.0 - wy) + double(b[x]) * wy;
        float* out = dst + y * dst_stride;
        for (int64_t x = 0; x < out_w; ++x) {
            const double wx = tx.weight[x];
            out[x] = float(row[tx.low[x]] * (1.0 - wx) + row[tx.high[x]] * wx);
        }
    }
}

runtime_transform check_input(const runtime_input& in, const Preprocess& pre, const ImageGeometry& graph) {
    if (in.layout != RUNTIME_LAYOUT_CHW && in.layout != RUNTIME_LAYOUT_HWC) {
        fail(RUNTIME_ERR_INVALID_ARGUMENT,
             "layout " + std::to_string(int(in.layout)) + " is not RUNTIME_LAYOUT_CHW (0) or RUNTIME_LAYOUT_HWC (1)");
    }
    if (in.batch < 1) fail(RUNTIME_ERR_INVALID_INPUT, "batch must be at least 1, got " + std::to_string(in.batch));
    if (graph.batch > 0 && in.batch != graph.batch) {
        fail(RUNTIME_ERR_INVALID_INPUT, "the graph takes batches of exactly " + std::to_string(graph.batch) +
                                            ", got " + std::to_string(in.batch));
    }
    if (in.height < 1 || in.width < 1 || in.height > kMaxSide || in.width > kMaxSide) {
        fail(RUNTIME_ERR_INVALID_INPUT, "image size " + size_text(in.height, in.width) + " (height x width) is not in 1.." +
                                            std::to_string(kMaxSide) + " (shape " + shape_text(in) + ")");
    }
    if (in.prescaled) {
        if (in.layout != RUNTIME_LAYOUT_CHW || in.channels != graph.channels || in.height != graph.height ||
            in.width != graph.width) {
            fail(RUNTIME_ERR_INVALID_INPUT, "a prescaled input must be the graph's tensor: (N, " +
                                                std::to_string(graph.channels) + ", " + std::to_string(graph.height) +
                                                ", " + std::to_string(graph.width) + ") CHW, got " + shape_text(in));
        }
    } else {
        const auto& accepted = pre.accepted_channels;
        const bool channels_ok = std::find(accepted.begin(), accepted.end(), in.channels) != accepted.end();
        // As runtime/_imageio.py: an image with channels the model takes but too few pixels on
        // a side hears about its size before its layout; a wrong channel count gets its own message.
        if (channels_ok && std::min(in.height, in.width) < pre.min_size) {
            fail(RUNTIME_ERR_INVALID_INPUT, "image too small: " + size_text(in.height, in.width) +
                                                " (height x width, shape " + shape_text(in) +
                                                "); the model needs at least " + std::to_string(pre.min_size) +
                                                " pixels on each side");
        }
        const char* layout = in.layout == RUNTIME_LAYOUT_HWC ? "HWC" : "CHW";
        const auto& layouts = pre.accepted_layouts;
        if (std::find(layouts.begin(), layouts.end(), layout) == layouts.end()) {
            std::string list;
            for (const std::string& l : layouts) list += (list.empty() ? "" : " or ") + l;
            fail(RUNTIME_ERR_INVALID_INPUT, std::string("layout ") + layout + " is not accepted by this model; expected " + list);
        }
        if (!channels_ok) {
            std::string list;
            for (std::size_t i = 0; i < accepted.size(); ++i) {
                list += (i == 0 ? "" : (i + 1 == accepted.size() ? " or " : ", ")) + std::to_string(accepted[i]);
            }
            fail(RUNTIME_ERR_INVALID_INPUT, "expected " + list + " channels, got " + std::to_string(in.channels) +
                                                " (shape " + shape_text(in) + ")");
        }
        if (pre.resize == Resize::exact && (in.height != graph.height || in.width != graph.width)) {
            fail(RUNTIME_ERR_INVALID_INPUT, "expected " + size_text(graph.height, graph.width) +
                                                " (height x width), got " + size_text(in.height, in.width) +
                                                " (shape " + shape_text(in) + ")");
        }
    }
    // At most 2^31 floats in or out: divided step by step, never multiplied, as
    // the graph's sides and the accepted channel counts come from the manifest,
    // unbounded, and their product overflowed int64 (found by fuzz_preprocess;
    // bindings/fuzz/corpus/*/regression_huge_*). All are >= 1 here.
    const int64_t limit = int64_t(1) << 31;
    const int64_t channels = std::max(in.channels, graph.channels);
    const int64_t most = std::min(limit / (in.height * in.width) / channels, limit / graph.height / graph.width / channels);
    if (in.batch > most) {
        fail(RUNTIME_ERR_INVALID_INPUT, "batch " + std::to_string(in.batch) + " is too large for one call");
    }
    if (in.prescaled || pre.resize == Resize::exact) return identity(in.height, in.width);
    return letterbox_fit(in.height, in.width, graph.height, graph.width);
}

void preprocess(const runtime_input& in, const Preprocess& pre, const ImageGeometry& graph, const runtime_transform& t,
                float* out) {
    const float scale = float(pre.scale);
    const float low = float(pre.source_low), high = float(pre.source_high);
    const std::size_t src_plane = std::size_t(in.height) * std::size_t(in.width);
    const std::size_t plane = std::size_t(graph.height) * std::size_t(graph.width);
    // Element (c, i) of an image is at c * channel_step + i * pixel_step.
    const std::size_t channel_step = in.layout == RUNTIME_LAYOUT_CHW ? src_plane : 1;
    const std::size_t pixel_step = in.layout == RUNTIME_LAYOUT_CHW ? 1 : std::size_t(in.channels);
    const bool letterbox = pre.resize == Resize::letterbox;
    thread_local std::vector<float> clipped;
    if (letterbox && clipped.size() < src_plane) clipped.assign(src_plane, 0.0f);

    for (int64_t b = 0; b < in.batch; ++b) {
        const float* src = in.data + std::size_t(b) * std::size_t(in.channels) * src_plane;
        float* dst = out + std::size_t(b) * std::size_t(graph.channels) * plane;

        // The values of the channels read: finite, in the source range, not 0..1 for a wider range.
        // Branch-free on the hot path; the 0/1 scan below runs only for images whose maximum is <= 1.
        float vmin = INFINITY, vmax = -INFINITY;
        std::size_t non_finite = 0;
        for (int64_t c : pre.read_channels) {
            const float* s = src + std::size_t(c) * channel_step;
            for (std::size_t i = 0; i < src_plane; ++i) {
                const float v = s[i * pixel_step];
                const bool finite = std::isfinite(v);
                non_finite += !finite;
                vmin = std::min(vmin, finite ? v : vmin);
                vmax = std::max(vmax, finite ? v : vmax);
            }
        }
        bool binary = true;  // only 0 and 1: a valid image whatever the range
        if (pre.source_high > 1.0 && vmax <= 1.0f) {
            for (int64_t c : pre.read_channels) {
                const float* s = src + std::size_t(c) * channel_step;
                for (std::size_t i = 0; i < src_plane && binary; ++i) {
                    const float v = s[i * pixel_step];
                    binary = !std::isfinite(v) || v == 0.0f || v == 1.0f;
                }
            }
        }
        const std::string where = in.batch > 1 ? "image " + std::to_string(b) + " of the batch" : "the image";
        const std::string range = number(pre.source_low) + ".." + number(pre.source_high);
        if (non_finite) {
            fail(RUNTIME_ERR_INVALID_INPUT, where + " contains " + std::to_string(non_finite) +
                                                " NaN or infinite value(s) out of " +
                                                std::to_string(pre.read_channels.size() * src_plane) +
                                                "; expected finite values in " + range);
        }
        if (vmin < pre.source_low - kRangeTolerance || vmax > pre.source_high + kRangeTolerance) {
            fail(RUNTIME_ERR_INVALID_INPUT, "values out of range in " + where + ": min " + number(vmin) + ", max " +
                                                number(vmax) + "; expected " + range);
        }
        if (pre.source_high > 1.0 && vmax <= 1.0f && !binary) {
            fail(RUNTIME_ERR_INVALID_INPUT, "values look like 0..1 (min " + number(vmin) + ", max " + number(vmax) +
                                                ") in " + where + "; expected " + range +
                                                " (images are not scaled by the caller: multiply a 0..1 image by " +
                                                number(pre.source_high) + ")");
        }

        // Read channels: clip to the source range, letterbox, scale (float32, as numpy does).
        for (std::size_t k = 0; k < pre.read_channels.size(); ++k) {
            const float* s = src + std::size_t(pre.read_channels[k]) * channel_step;
            float* d = dst + k * plane;
            if (!letterbox) {
                for (std::size_t i = 0; i < plane; ++i) d[i] = std::clamp(s[i * pixel_step], low, high) * scale;
                continue;
            }
            for (std::size_t i = 0; i < src_plane; ++i) clipped[i] = std::clamp(s[i * pixel_step], low, high);
            std::fill_n(d, plane, float(pre.pad_value));
            resize_bilinear(clipped.data(), in.height, in.width, d + t.pad_y * graph.width + t.pad_x, graph.width,
                            t.resized_height, t.resized_width);
            for (std::size_t i = 0; i < plane; ++i) d[i] *= scale;
        }
        // The validity mask (not scaled): 1 on image pixels, 0 on padding.
        if (pre.append_mask) {
            float* mask = dst + pre.read_channels.size() * plane;
            std::fill_n(mask, plane, 0.0f);
            for (int64_t y = t.pad_y; y < t.pad_y + t.resized_height; ++y) {
                std::fill_n(mask + y * graph.width + t.pad_x, t.resized_width, 1.0f);
            }
        }
    }
}

}  // namespace runtime::detail
