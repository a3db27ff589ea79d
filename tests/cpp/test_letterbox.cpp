// libruntime's letterbox alone (bindings/src/preprocess.cpp, compiled into this
// test) against runtime/_letterbox.py: the canvas, the validity mask and the
// transform of odd-sized images (upscale, downscale, a one-row strip), in both
// layouts. The fixture's cases (make_fixture.py, "letterbox_units") use the
// family's own canvas size and pad value.
//
// Usage: test_letterbox FIXTURE_DIR
#include "check.hpp"
#include "fixture.hpp"
#include "internal.hpp"

using namespace testing_support;
namespace rd = runtime::detail;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return 2;
    }
    const fs::path fixture = argv[1];
    const json meta = load_json(fixture / "fixture.json");
    for (const json& unit : meta["letterbox_units"]) {
        const Image image = load_image(fixture, unit, "input");
        const std::vector<float> canvas = load_floats(fixture / unit["canvas"].get<std::string>());
        const std::vector<float> mask = load_floats(fixture / unit["mask"].get<std::string>());
        const int64_t height = unit["height"], width = unit["width"];
        const std::size_t plane = std::size_t(height * width);

        // Every channel read, scale 1 (the canvas as is), then the mask.
        rd::Preprocess pre;
        pre.resize = rd::Resize::letterbox;
        pre.pad_value = unit["pad_value"];
        pre.height = height;
        pre.width = width;
        for (int64_t c = 0; c < image.channels; ++c) pre.read_channels.push_back(c);
        pre.append_mask = true;
        pre.accepted_channels = {image.channels};
        pre.accepted_layouts = {"CHW", "HWC"};
        pre.source_low = meta["source_range"][0];
        pre.source_high = meta["source_range"][1];
        pre.scale = 1.0;
        const rd::ImageGeometry graph{image.channels + 1, height, width, -1};

        std::vector<float> hwc(image.data.size());
        for (int64_t c = 0; c < image.channels; ++c)
            for (int64_t i = 0; i < image.height * image.width; ++i)
                hwc[std::size_t(i * image.channels + c)] = image.data[std::size_t(c * image.height * image.width + i)];
        for (int32_t layout : {RUNTIME_LAYOUT_CHW, RUNTIME_LAYOUT_HWC}) {
            const runtime_input in = make_input(layout == RUNTIME_LAYOUT_CHW ? image.data.data() : hwc.data(), 1,
                                                image.channels, image.height, image.width, layout);
            const runtime_transform t = rd::check_input(in, pre, graph);
            const json& want = unit["transform"];
            CHECK(t.scale_x == want["scale_x"].get<double>() && t.scale_y == want["scale_y"].get<double>());
            CHECK(t.pad_x == want["pad_x"] && t.pad_y == want["pad_y"]);
            CHECK(t.resized_width == want["resized_width"] && t.resized_height == want["resized_height"]);
            CHECK(t.source_width == image.width && t.source_height == image.height);
            std::vector<float> out(std::size_t(graph.channels) * plane, -1.0f);
            rd::preprocess(in, pre, graph, t, out.data());
            const float canvas_diff = max_abs_diff(out.data(), canvas.data(), canvas.size());
            const float mask_diff = max_abs_diff(out.data() + canvas.size(), mask.data(), plane);
            CHECK_MSG(canvas_diff < 1e-6f, "canvas max abs diff " + std::to_string(canvas_diff));
            CHECK_MSG(mask_diff == 0.0f, "mask max abs diff " + std::to_string(mask_diff));
            std::printf("letterbox %lldx%lld -> %lldx%lld (%s): canvas max abs diff %.3g\n", (long long)image.height,
                        (long long)image.width, (long long)height, (long long)width,
                        layout == RUNTIME_LAYOUT_CHW ? "CHW" : "HWC", canvas_diff);
        }
    }
    if (testing_support::failures == 0) std::printf("all checks passed\n");
    return testing_support::failures == 0 ? 0 : 1;
}
