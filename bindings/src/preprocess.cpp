// Input validation and scaling: the C++ twin of runtime/_imageio.py's checks.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "internal.hpp"

namespace runtime::detail {
namespace {

// Float files go through arithmetic in production; a rounding error of this
// size below 0 or above 255 is not a wrong scale (same as the Python runtime).
constexpr double kRangeTolerance = 1e-3;

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

}  // namespace

void check_input(const runtime_input& in, const Preprocess& pre, int64_t model_channels, int64_t height,
                 int64_t width) {
    if (in.layout != RUNTIME_LAYOUT_CHW && in.layout != RUNTIME_LAYOUT_HWC) {
        fail(RUNTIME_ERR_INVALID_ARGUMENT,
             "layout " + std::to_string(int(in.layout)) + " is not RUNTIME_LAYOUT_CHW (0) or RUNTIME_LAYOUT_HWC (1)");
    }
    if (in.batch < 1) fail(RUNTIME_ERR_INVALID_INPUT, "batch must be at least 1, got " + std::to_string(in.batch));
    const auto& accepted = pre.accepted_channels;
    if (std::find(accepted.begin(), accepted.end(), in.channels) == accepted.end()) {
        std::string list;
        for (std::size_t i = 0; i < accepted.size(); ++i) {
            list += (i == 0 ? "" : (i + 1 == accepted.size() ? " or " : ", ")) + std::to_string(accepted[i]);
        }
        fail(RUNTIME_ERR_INVALID_INPUT,
             "expected " + list + " channels, got " + std::to_string(in.channels) + " (shape " + shape_text(in) + ")");
    }
    if (in.channels < model_channels) {
        fail(RUNTIME_ERR_INVALID_INPUT, "the graph needs " + std::to_string(model_channels) + " channels, got " +
                                            std::to_string(in.channels) + " (shape " + shape_text(in) + ")");
    }
    if (in.height != height || in.width != width) {
        fail(RUNTIME_ERR_INVALID_INPUT, "expected " + std::to_string(height) + "x" + std::to_string(width) +
                                            " (height x width), got " + std::to_string(in.height) + "x" +
                                            std::to_string(in.width) + " (shape " + shape_text(in) + ")");
    }
    if (in.batch > (int64_t(1) << 31) / (height * width)) {
        fail(RUNTIME_ERR_INVALID_INPUT, "batch " + std::to_string(in.batch) + " is too large for one call");
    }
}

void preprocess(const runtime_input& in, const Preprocess& pre, int64_t model_channels, int64_t height, int64_t width,
                float* out) {
    const float scale = static_cast<float>(pre.scale);
    const float low = static_cast<float>(pre.range_low), high = static_cast<float>(pre.range_high);
    const std::size_t plane = std::size_t(height) * std::size_t(width);
    const std::size_t channels = std::size_t(in.channels);
    const std::size_t kept = std::size_t(model_channels);
    for (int64_t b = 0; b < in.batch; ++b) {
        const float* src = in.data + std::size_t(b) * channels * plane;
        float* dst = out + std::size_t(b) * kept * plane;
        float vmin = INFINITY, vmax = -INFINITY;
        std::size_t non_finite = 0;
        // One pass: range bookkeeping, clip to the source range and scale, as
        // np.clip(x, 0, 255) * scale does in the Python runtime.
        auto take = [&](float v) {
            if (!std::isfinite(v)) {
                ++non_finite;
                return 0.0f;
            }
            vmin = std::min(vmin, v);
            vmax = std::max(vmax, v);
            return std::clamp(v, low, high) * scale;
        };
        if (in.layout == RUNTIME_LAYOUT_CHW) {
            for (std::size_t c = 0; c < kept; ++c) {
                const float* s = src + c * plane;
                float* d = dst + c * plane;
                for (std::size_t i = 0; i < plane; ++i) d[i] = take(s[i]);
            }
        } else {
            for (std::size_t i = 0; i < plane; ++i) {
                const float* s = src + i * channels;
                for (std::size_t c = 0; c < kept; ++c) dst[c * plane + i] = take(s[c]);
            }
        }
        const std::string where = in.batch > 1 ? "image " + std::to_string(b) + " of the batch" : "the image";
        if (non_finite) {
            fail(RUNTIME_ERR_INVALID_INPUT, where + " contains " + std::to_string(non_finite) +
                                                " NaN or infinite value(s) out of " + std::to_string(kept * plane) +
                                                "; expected finite values in 0..255");
        }
        if (vmin < low - kRangeTolerance || vmax > high + kRangeTolerance) {
            fail(RUNTIME_ERR_INVALID_INPUT, "values out of range in " + where + ": min " + number(vmin) + ", max " +
                                                number(vmax) + "; expected " + number(low) + ".." + number(high));
        }
        if (vmax <= 1.0f && high > 1.0f) {
            // A float image whose values all lie in 0..1 and are not all integers
            // was scaled already; the network expects 0..255. With the maximum
            // at most 1 the only integers are 0 and 1, i.e. 0 and scale after scaling.
            bool integers = true;
            for (std::size_t i = 0; i < kept * plane && integers; ++i) integers = dst[i] == 0.0f || dst[i] == scale;
            if (!integers) {
                fail(RUNTIME_ERR_INVALID_INPUT, "values look like 0..1 (min " + number(vmin) + ", max " +
                                                    number(vmax) + ") in " + where +
                                                    "; expected 0..255 (production images are float32 in 0..255: "
                                                    "multiply by 255)");
            }
        }
    }
}

}  // namespace runtime::detail
