// Reading a family fixture written by make_fixture.py: fixture.json and its raw float32 files.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/runtime.h"

namespace testing_support {

namespace fs = std::filesystem;
using nlohmann::json;

inline std::vector<float> load_floats(const fs::path& path) {
    std::ifstream stream(path, std::ios::binary);
    if (!stream) {
        std::fprintf(stderr, "cannot open %s\n", path.c_str());
        std::exit(2);
    }
    const auto size = fs::file_size(path);
    std::vector<float> values(size / sizeof(float));
    stream.read(reinterpret_cast<char*>(values.data()), std::streamsize(size));
    return values;
}

inline json load_json(const fs::path& path) {
    std::ifstream stream(path);
    if (!stream) {
        std::fprintf(stderr, "cannot open %s (run the runtime.fixture.<family> test first)\n", path.c_str());
        std::exit(2);
    }
    return json::parse(stream);
}

// A source image of the fixture: (channels, height, width) CHW floats.
struct Image {
    std::vector<float> data;
    int64_t channels = 0, height = 0, width = 0;
};

inline Image load_image(const fs::path& dir, const json& entry, const char* key = "file") {
    Image image;
    image.data = load_floats(dir / entry.at(key).get<std::string>());
    image.channels = entry.at("shape")[0];
    image.height = entry.at("shape")[1];
    image.width = entry.at("shape")[2];
    return image;
}

inline std::vector<std::vector<float>> load_refs(const fs::path& dir, const json& refs) {
    std::vector<std::vector<float>> out;
    for (const auto& name : refs) out.push_back(load_floats(dir / name.get<std::string>()));
    return out;
}

inline float max_abs_diff(const float* a, const float* b, std::size_t n) {
    float worst = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
        const float d = std::fabs(a[i] - b[i]);
        worst = std::isnan(d) ? INFINITY : std::max(worst, d);
    }
    return worst;
}

// Like max_abs_diff, but relative to the reference where it exceeds 1 in
// magnitude: outputs such as point coordinates in pixels carry their engine's
// float32 rounding at their own scale.
inline float max_scaled_diff(const float* got, const float* want, std::size_t n) {
    float worst = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
        const float d = std::fabs(got[i] - want[i]) / std::max(1.0f, std::fabs(want[i]));
        worst = std::isnan(d) ? INFINITY : std::max(worst, d);
    }
    return worst;
}

inline runtime_input make_input(const float* data, int64_t batch, int64_t channels, int64_t h, int64_t w,
                                int32_t layout = RUNTIME_LAYOUT_CHW) {
    runtime_input in;
    runtime_input_init(&in);
    in.data = data;
    in.batch = batch;
    in.channels = channels;
    in.height = h;
    in.width = w;
    in.layout = layout;
    return in;
}

inline runtime_input make_input(const Image& image) {
    return make_input(image.data.data(), 1, image.channels, image.height, image.width);
}

}  // namespace testing_support
