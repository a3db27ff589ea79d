// libruntime against one family's fixture (make_fixture.py): parity with Python
// ONNX Runtime on every output, the patch/base layers, the letterbox and its
// transform, every bad bundle and bad input, concurrency, the OpenVINO backend,
// the typed keypoints against the Python runtime (keypoints kind; the refusal
// otherwise) and the C++ wrapper. Nothing here knows the family: everything
// comes from fixture.json and the bundle's manifest.
//
// Usage: test_runtime FIXTURE_DIR [section]
//   sections: parity layers letterbox errors threads openvino keypoints wrapper (default: all)
#include <atomic>
#include <cstring>
#include <functional>
#include <limits>
#include <thread>
#include <tuple>
#include <unistd.h>

#include "check.hpp"
#include "fixture.hpp"
#include "runtime/runtime.h"
#include "runtime/runtime.hpp"

namespace fs = std::filesystem;
using namespace testing_support;

namespace {

fs::path fixture;
json meta;

bool letterboxed() { return meta["resize"] == "letterbox"; }
// Exact resize feeds bit-identical tensors; a letterbox is float64 arithmetic on both sides.
float tolerance() { return letterboxed() ? 1e-4f : 1e-6f; }
bool is_heatmap() { return meta["kind"] == "heatmap"; }
bool is_keypoints() { return meta["kind"] == "keypoints"; }
// Decoded points against the Python runtime's, in source pixels.
constexpr double kPointTolerance = 1e-3;

runtime_session* open(const fs::path& path, runtime_session_options* options = nullptr) {
    runtime_session* session = nullptr;
    const runtime_status status = runtime_session_create(path.c_str(), options, &session);
    CHECK_MSG(status == RUNTIME_OK, path.string() + ": " + runtime_last_error());
    return session;
}

void expect_status(runtime_status status, runtime_status expected, const std::string& fragment) {
    CHECK_MSG(status == expected, std::string(runtime_status_string(status)) + ", expected " +
                                      runtime_status_string(expected) + ": " + runtime_last_error());
    CHECK_MSG(std::strstr(runtime_last_error(), fragment.c_str()) != nullptr,
              std::string("message '") + runtime_last_error() + "' lacks '" + fragment + "'");
}

void expect_create_fails(const fs::path& path, runtime_status expected, const std::string& fragment,
                         runtime_session_options* options = nullptr) {
    runtime_session* session = reinterpret_cast<runtime_session*>(0x1);
    expect_status(runtime_session_create(path.c_str(), options, &session), expected, fragment);
    CHECK(session == nullptr);
}

std::size_t output_count(const runtime_session* session) {
    std::size_t count = 0;
    CHECK(runtime_session_output_count(session, &count) == RUNTIME_OK);
    return count;
}

// Every output of one run in fresh buffers, sized by a size query first.
struct Result {
    runtime_status status = RUNTIME_OK;
    std::vector<std::vector<float>> tensors;
    runtime_transform transform{};
};

Result run_all(runtime_session* session, const runtime_input& in) {
    Result result;
    std::vector<runtime_tensor_buffer> buffers(output_count(session), runtime_tensor_buffer{nullptr, 0, 0});
    runtime_outputs out;
    runtime_outputs_init(&out);
    out.tensors = buffers.data();
    out.count = buffers.size();
    result.status = runtime_session_run(session, &in, &out);
    if (result.status != RUNTIME_ERR_BUFFER_TOO_SMALL) return result;
    for (auto& b : buffers) {
        result.tensors.emplace_back(b.needed, std::numeric_limits<float>::quiet_NaN());
        b.data = result.tensors.back().data();
        b.capacity = b.needed;
    }
    result.status = runtime_session_run(session, &in, &out);
    result.transform = out.transform;
    return result;
}

// Every output of image `slot` of a batched result against its batch-1 reference:
// the largest difference, relative where the reference exceeds 1 in magnitude.
float compare(const Result& got, const std::vector<std::vector<float>>& refs, std::size_t slot = 0) {
    float worst = 0.0f;
    CHECK(got.tensors.size() == refs.size());
    for (std::size_t k = 0; k < std::min(got.tensors.size(), refs.size()); ++k) {
        const std::size_t n = refs[k].size();
        CHECK_MSG(got.tensors[k].size() >= (slot + 1) * n, "output " + std::to_string(k) + " is too short");
        if (got.tensors[k].size() < (slot + 1) * n) return INFINITY;
        worst = std::max(worst, max_scaled_diff(got.tensors[k].data() + slot * n, refs[k].data(), n));
    }
    return worst;
}

bool same_transform(const runtime_transform& t, const json& want) {
    return std::fabs(t.scale_x - want["scale_x"].get<double>()) < 1e-12 &&
           std::fabs(t.scale_y - want["scale_y"].get<double>()) < 1e-12 && t.pad_x == want["pad_x"] &&
           t.pad_y == want["pad_y"] && t.resized_width == want["resized_width"] &&
           t.resized_height == want["resized_height"] && t.source_width == want["source_width"] &&
           t.source_height == want["source_height"];
}

std::vector<float> to_hwc(const std::vector<float>& chw, int64_t channels, int64_t h, int64_t w) {
    std::vector<float> hwc(chw.size());
    for (int64_t c = 0; c < channels; ++c)
        for (int64_t i = 0; i < h * w; ++i) hwc[std::size_t(i * channels + c)] = chw[std::size_t(c * h * w + i)];
    return hwc;
}

// The reference heatmap: the heatmap channel of the reference output, clipped.
std::vector<float> reference_heatmap(const std::vector<std::vector<float>>& refs, const json& shape) {
    const json& h = meta["heatmap"];
    const std::size_t plane = std::size_t(shape[2].get<int64_t>() * shape[3].get<int64_t>());
    const std::vector<float>& raw = refs[h["output"].get<std::size_t>()];
    std::vector<float> out(plane);
    const float low = h["range"][0], high = h["range"][1];
    for (std::size_t i = 0; i < plane; ++i) {
        out[i] = std::clamp(raw[h["channel"].get<std::size_t>() * plane + i], low, high);
    }
    return out;
}

void check_heatmap(runtime_session* session, const runtime_input& in, const std::vector<std::vector<float>>& refs,
                   const json& output_shape, float tol) {
    std::size_t needed = 0;
    expect_status(runtime_session_run_heatmap(session, &in, nullptr, 0, &needed, nullptr),
                  RUNTIME_ERR_BUFFER_TOO_SMALL, "no heatmap buffer given");
    const std::vector<float> want = reference_heatmap(refs, output_shape);
    CHECK(needed == want.size());
    std::vector<float> heat(needed);
    runtime_transform transform{};
    CHECK_MSG(runtime_session_run_heatmap(session, &in, heat.data(), heat.size(), &needed, &transform) == RUNTIME_OK,
              runtime_last_error());
    const float diff = max_abs_diff(heat.data(), want.data(), want.size());
    CHECK_MSG(diff < tol, "heatmap max abs diff " + std::to_string(diff));
    CHECK(transform.scale_x > 0.0 && transform.source_width == in.width);
}

void test_parity() {
    runtime_session* session = open(fixture / "bundle");
    if (!session) return;

    runtime_session_info info;
    runtime_session_info_init(&info);
    CHECK(runtime_session_get_info(session, &info) == RUNTIME_OK);
    CHECK(std::string(info.family) == meta["family"].get<std::string>());
    CHECK(std::string(info.variant).size() > 0);
    CHECK(std::string(info.graph_file) == meta["full_graph"].get<std::string>());
    CHECK(std::string(info.layer) == "full" && std::string(info.precision) == "fp32");
    CHECK(std::string(info.postprocess) == meta["kind"].get<std::string>());
    CHECK(info.backend == RUNTIME_BACKEND_ONNXRUNTIME && info.device == RUNTIME_DEVICE_CPU);
    CHECK(info.input_count == 1 && info.output_count == meta["outputs"].size());
    CHECK(info.channels == meta["channels"] && info.height == meta["height"] && info.width == meta["width"]);
    CHECK(info.resize == (letterboxed() ? RUNTIME_RESIZE_LETTERBOX : RUNTIME_RESIZE_EXACT));
    CHECK(info.source_low == meta["source_range"][0] && info.source_high == meta["source_range"][1]);
    CHECK(bool(info.has_heatmap) == is_heatmap());
    if (is_heatmap()) {
        CHECK(info.heatmap_output == meta["heatmap"]["output"] && info.heatmap_channel == meta["heatmap"]["channel"]);
        CHECK(info.heatmap_threshold == meta["heatmap"]["threshold"].get<double>());
    }

    // The tensors, as the manifest declares them.
    runtime_tensor_info tensor;
    runtime_tensor_info_init(&tensor);
    CHECK(runtime_session_input_info(session, 0, &tensor) == RUNTIME_OK);
    CHECK(std::string(tensor.role) == "image" && tensor.dtype == RUNTIME_DTYPE_FLOAT32 && tensor.rank == 4);
    CHECK(tensor.dims[1] == info.channels && tensor.dims[2] == info.height && tensor.dims[3] == info.width);
    for (std::size_t k = 0; k < meta["outputs"].size(); ++k) {
        const json& want = meta["outputs"][k];
        CHECK(runtime_session_output_info(session, k, &tensor) == RUNTIME_OK);
        CHECK(std::string(tensor.name) == want["name"].get<std::string>());
        CHECK(std::string(tensor.role) == want["role"].get<std::string>());
        CHECK(tensor.rank == int32_t(want["shape"].size()));
        for (int32_t d = 0; d < tensor.rank; ++d) CHECK(tensor.dims[d] == want["shape"][d].get<int64_t>());
        std::size_t index = 99;
        CHECK(runtime_session_find_output(session, tensor.name, &index) == RUNTIME_OK && index == k);
    }
    std::size_t index = 0;
    expect_status(runtime_session_find_output(session, "no-such-output", &index), RUNTIME_ERR_INVALID_ARGUMENT,
                  "has no output 'no-such-output'; it has [");
    expect_status(runtime_session_output_info(session, 99, &tensor), RUNTIME_ERR_INVALID_ARGUMENT,
                  "output index 99 is out of range");

    // Each image, CHW and HWC: every output and the transform.
    std::vector<Image> images;
    for (const json& entry : meta["images"]) {
        const Image image = load_image(fixture, entry);
        const auto refs = load_refs(fixture, entry["refs"]);
        const Result chw = run_all(session, make_input(image));
        CHECK_MSG(chw.status == RUNTIME_OK, runtime_last_error());
        const float diff = compare(chw, refs);
        CHECK_MSG(diff < tolerance(), "full graph max diff " + std::to_string(diff));
        CHECK(same_transform(chw.transform, entry["transform"]));
        std::printf("parity full fp32 %s: max diff %.3g\n", entry["file"].get<std::string>().c_str(), diff);
        const std::vector<float> hwc = to_hwc(image.data, image.channels, image.height, image.width);
        const Result interleaved =
            run_all(session, make_input(hwc.data(), 1, image.channels, image.height, image.width, RUNTIME_LAYOUT_HWC));
        CHECK_MSG(interleaved.status == RUNTIME_OK, runtime_last_error());
        for (std::size_t k = 0; k < chw.tensors.size() && k < interleaved.tensors.size(); ++k) {
            CHECK(max_abs_diff(chw.tensors[k].data(), interleaved.tensors[k].data(), chw.tensors[k].size()) == 0.0f);
        }
        if (is_heatmap()) check_heatmap(session, make_input(image), refs, meta["outputs"][meta["heatmap"]["output"].get<std::size_t>()]["shape"], tolerance());
        images.push_back(image);
    }
    if (!is_heatmap()) {
        std::size_t needed = 0;
        expect_status(runtime_session_run_heatmap(session, nullptr, nullptr, 0, &needed, nullptr),
                      RUNTIME_ERR_INVALID_ARGUMENT, "input is NULL");
        const runtime_input in = make_input(images[0]);
        expect_status(runtime_session_run_heatmap(session, &in, nullptr, 0, &needed, nullptr),
                      RUNTIME_ERR_INVALID_ARGUMENT, "not heatmap; use runtime_session_run");
    }

    // One batch of every image when they share a size: the same numbers.
    bool same_size = images.size() > 1;
    for (const Image& image : images) {
        same_size = same_size && image.channels == images[0].channels && image.height == images[0].height &&
                    image.width == images[0].width;
    }
    if (same_size) {
        std::vector<float> batch;
        for (const Image& image : images) batch.insert(batch.end(), image.data.begin(), image.data.end());
        const Result result = run_all(session, make_input(batch.data(), int64_t(images.size()), images[0].channels,
                                                          images[0].height, images[0].width));
        CHECK_MSG(result.status == RUNTIME_OK, runtime_last_error());
        for (std::size_t i = 0; i < images.size(); ++i) {
            CHECK(compare(result, load_refs(fixture, meta["images"][i]["refs"]), i) < tolerance());
        }
    }
    runtime_session_destroy(session);

    // The lone graph file, with its embedded manifest.
    const auto refs0 = load_refs(fixture, meta["images"][0]["refs"]);
    session = open(fixture / "bundle" / meta["full_graph"].get<std::string>());
    if (session) {
        const Result result = run_all(session, make_input(images[0]));
        CHECK_MSG(result.status == RUNTIME_OK, runtime_last_error());
        CHECK(compare(result, refs0) < tolerance());
        runtime_session_destroy(session);
    }

    // The same graph from memory, fed the tensor Python made (prescaled).
    std::ifstream file(fixture / "bundle" / meta["full_graph"].get<std::string>(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    runtime_session* from_memory = nullptr;
    CHECK_MSG(runtime_session_create_from_memory(bytes.data(), bytes.size(), "model.onnx", nullptr, &from_memory) ==
                  RUNTIME_OK,
              runtime_last_error());
    if (from_memory) {
        const std::vector<float> tensor0 = load_floats(fixture / meta["images"][0]["tensor"].get<std::string>());
        runtime_input in = make_input(tensor0.data(), 1, meta["channels"], meta["height"], meta["width"]);
        in.prescaled = 1;
        const Result result = run_all(from_memory, in);
        CHECK_MSG(result.status == RUNTIME_OK, runtime_last_error());
        const float diff = compare(result, refs0);
        CHECK_MSG(diff < 1e-6f, "prescaled max diff " + std::to_string(diff));
        CHECK(result.transform.scale_x == 1.0 && result.transform.pad_x == 0 &&
              result.transform.source_width == meta["width"]);
        in.channels += 1;
        expect_status(run_all(from_memory, in).status, RUNTIME_ERR_INVALID_INPUT,
                      "a prescaled input must be the graph's tensor");
        runtime_session_destroy(from_memory);
    }
    runtime_session* none = nullptr;
    CHECK(runtime_session_create_from_memory(bytes.data(), 100, nullptr, nullptr, &none) == RUNTIME_ERR_MODEL_LOAD);
    CHECK(none == nullptr);
}

void test_layers() {
    if (meta["layers"].empty()) std::printf("layers: the bundle has no patch or base graph to test\n");
    for (const json& layer : meta["layers"]) {
        runtime_session_options options;
        runtime_session_options_init(&options);
        const bool base = layer["layer"] == "base";
        options.layer = base ? RUNTIME_LAYER_BASE : RUNTIME_LAYER_PATCH;
        runtime_session* session = open(fixture / "bundle", &options);
        if (!session) continue;
        const Image image = load_image(fixture, layer, "input");
        const auto refs = load_refs(fixture, layer["refs"]);
        const Result result = run_all(session, make_input(image));
        CHECK_MSG(result.status == RUNTIME_OK, runtime_last_error());
        const float diff = compare(result, refs);
        CHECK_MSG(diff < tolerance(), layer["layer"].get<std::string>() + " max diff " + std::to_string(diff));
        std::printf("parity %s fp32: max diff %.3g\n", layer["layer"].get<std::string>().c_str(), diff);
        std::size_t needed = 0;
        const runtime_input in = make_input(image);
        if (base) {
            expect_status(runtime_session_run_heatmap(session, &in, nullptr, 0, &needed, nullptr),
                          RUNTIME_ERR_INVALID_ARGUMENT, is_heatmap() ? "(logits), not a heatmap" : "not heatmap");
        } else if (is_heatmap()) {
            check_heatmap(session, in, refs, layer["outputs"][meta["heatmap"]["output"].get<std::size_t>()]["shape"],
                          tolerance());
        }
        runtime_session_destroy(session);
    }
}

void test_letterbox() {
    const json& lb = meta["letterbox"];
    runtime_session* session = open(fixture / lb["bundle"].get<std::string>());
    if (!session) return;
    runtime_session_info info;
    runtime_session_info_init(&info);
    CHECK(runtime_session_get_info(session, &info) == RUNTIME_OK && info.resize == RUNTIME_RESIZE_LETTERBOX);
    CHECK(info.min_size == lb["min_size"].get<int64_t>());
    const Image image = load_image(fixture, lb, "input");
    CHECK(image.height != info.height || image.width != info.width);
    const Result result = run_all(session, make_input(image));
    CHECK_MSG(result.status == RUNTIME_OK, runtime_last_error());
    const float diff = compare(result, load_refs(fixture, lb["refs"]));
    CHECK_MSG(diff < 1e-4f, "letterboxed max diff " + std::to_string(diff));
    std::printf("parity letterbox %lldx%lld -> %lldx%lld: max diff %.3g\n", (long long)image.height,
                (long long)image.width, (long long)info.height, (long long)info.width, diff);
    CHECK(same_transform(result.transform, lb["transform"]));

    // Points back to the source image, as runtime/_letterbox.py Transform.to_source does.
    std::vector<double> xy;
    for (const json& p : lb["points"]) xy.insert(xy.end(), {p[0].get<double>(), p[1].get<double>()});
    CHECK(runtime_map_to_source(&result.transform, xy.data(), xy.size() / 2) == RUNTIME_OK);
    for (std::size_t i = 0; i < lb["mapped"].size(); ++i) {
        CHECK(std::fabs(xy[2 * i] - lb["mapped"][i][0].get<double>()) < 1e-9);
        CHECK(std::fabs(xy[2 * i + 1] - lb["mapped"][i][1].get<double>()) < 1e-9);
    }
    runtime::map_to_source(result.transform, nullptr, 0);  // nothing to map
    runtime_transform zero{};
    expect_status(runtime_map_to_source(&zero, xy.data(), 1), RUNTIME_ERR_INVALID_ARGUMENT, "is not positive");
    expect_status(runtime_map_to_source(nullptr, xy.data(), 1), RUNTIME_ERR_INVALID_ARGUMENT, "transform is NULL");
    expect_status(runtime_map_to_source(&result.transform, nullptr, 1), RUNTIME_ERR_INVALID_ARGUMENT, "xy is NULL");

    // Any size from preprocess.min_size (default 1) up; never zero (test_min_size: below it).
    const int64_t least = lb["min_size"];
    std::vector<float> pixel(std::size_t(image.channels * least * least), float(meta["source_range"][0].get<double>()));
    CHECK_MSG(run_all(session, make_input(pixel.data(), 1, image.channels, least, least)).status == RUNTIME_OK,
              runtime_last_error());
    expect_status(run_all(session, make_input(pixel.data(), 1, image.channels, 0, 1)).status,
                  RUNTIME_ERR_INVALID_INPUT, "image size 0x1 (height x width) is not in 1..");
    runtime_session_destroy(session);
}

fs::path scratch_dir(const char* name) {
    const fs::path dir = fixture / ("cases-" + std::to_string(::getpid())) / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

fs::path copy_bundle(const char* name, const fs::path& from = fixture / "bundle") {
    const fs::path to = scratch_dir(name);
    for (const auto& entry : fs::directory_iterator(from)) fs::copy(entry.path(), to / entry.path().filename());
    return to;
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// A bundle copy whose manifest.json is edited (the graphs' hashes are unaffected).
void expect_manifest_fails(const char* name, const std::function<void(json&)>& edit, const std::string& fragment) {
    const fs::path dir = copy_bundle(name);
    json manifest = load_json(dir / "manifest.json");
    edit(manifest);
    write_text(dir / "manifest.json", manifest.dump(2));
    std::fprintf(stderr, "case %s\n", name);
    expect_create_fails(dir, RUNTIME_ERR_MODEL_LOAD, fragment);
}

json& full_entry(json& manifest) {
    for (json& g : manifest["graphs"]) {
        if (g["file"] == meta["full_graph"]) return g;
    }
    std::fprintf(stderr, "the manifest has no %s\n", meta["full_graph"].get<std::string>().c_str());
    std::exit(2);
}

// preprocess.color_order, as runtime_session_color_order() reports it: the manifest's value,
// "rgb" when a bundle written before the field has none.
void test_color_order() {
    runtime_session* session = open(fixture / "bundle");
    if (!session) return;
    int32_t order = -1;
    CHECK(runtime_session_color_order(session, &order) == RUNTIME_OK);
    const std::string written = meta["color_order"];
    CHECK_MSG(order == (written == "bgr" ? RUNTIME_COLOR_ORDER_BGR : RUNTIME_COLOR_ORDER_RGB),
              "the fixture's manifest says " + written + ", libruntime reports " + std::to_string(order));
    expect_status(runtime_session_color_order(session, nullptr), RUNTIME_ERR_INVALID_ARGUMENT, "order is NULL");
    runtime_session_destroy(session);
    const std::vector<std::pair<json, int32_t>> cases = {
        {json("rgb"), RUNTIME_COLOR_ORDER_RGB}, {json("bgr"), RUNTIME_COLOR_ORDER_BGR}, {json(), RUNTIME_COLOR_ORDER_RGB}};
    for (const auto& [value, expected] : cases) {
        const fs::path dir = copy_bundle("color-order-ok");
        json manifest = load_json(dir / "manifest.json");
        if (value.is_null()) {
            manifest["preprocess"].erase("color_order");
        } else {
            manifest["preprocess"]["color_order"] = value;
        }
        write_text(dir / "manifest.json", manifest.dump(2));
        runtime_session* edited = open(dir);
        if (!edited) continue;
        order = -1;
        CHECK(runtime_session_color_order(edited, &order) == RUNTIME_OK);
        CHECK_MSG(order == expected, "color_order " + (value.is_null() ? std::string("absent") : value.dump()) +
                                         ": libruntime reports " + std::to_string(order));
        runtime_session_destroy(edited);
    }
}

void test_bad_bundles() {
    expect_create_fails(fixture / "no-such-bundle", RUNTIME_ERR_MODEL_LOAD, "no bundle directory or graph file");
    expect_create_fails(scratch_dir("empty"), RUNTIME_ERR_MODEL_LOAD, "no manifest.json in");

    const fs::path bad_json = copy_bundle("bad-json");
    write_text(bad_json / "manifest.json", "{\"schema_version\": 2, \"family\": ");
    expect_create_fails(bad_json, RUNTIME_ERR_MODEL_LOAD, "cannot read");
    write_text(bad_json / "manifest.json", "[1, 2]");
    expect_create_fails(bad_json, RUNTIME_ERR_MODEL_LOAD, "expected a JSON object, got array");
    write_text(bad_json / "manifest.json", "{\"schema_version\": 2}");
    expect_create_fails(bad_json, RUNTIME_ERR_MODEL_LOAD, "missing fields ['family', 'variant'");

    // Every field is checked as runtime/_manifest.py checks it.
    expect_manifest_fails("schema", [](json& m) { m["schema_version"] = 1; },
                          "schema_version 1 is not supported: this runtime reads version 2; re-export the bundle");
    expect_manifest_fails("read-negative", [](json& m) { m["preprocess"]["read_channels"] = {-1}; },
                          "preprocess.read_channels is [-1]; expected a non-empty list of integers >= 0");
    expect_manifest_fails("read-beyond", [](json& m) {
        const auto& accepted = m["preprocess"]["accepted_channels"];
        m["preprocess"]["read_channels"][0] = *std::min_element(accepted.begin(), accepted.end());
    }, "expected indices below");
    expect_manifest_fails("scale", [](json& m) { m["preprocess"]["scale"] = 0; },
                          "preprocess.scale is 0; expected a number above 0");
    expect_manifest_fails("range", [](json& m) {
        auto& r = m["preprocess"]["source_range"];
        r = {r[1], r[0]};
    }, "expected [low, high] with low < high");
    expect_manifest_fails("names", [](json& m) { m["preprocess"]["channel_names"].push_back("extra"); },
                          "names (read_channels, then the mask)");
    expect_manifest_fails("layout", [](json& m) { m["preprocess"]["accepted_layouts"] = {"NHWC"}; },
                          "preprocess.accepted_layouts is [\"NHWC\"]; expected a list of ['CHW', 'HWC']");
    expect_manifest_fails("no-pad", [](json& m) {
        m["preprocess"]["resize"] = "letterbox";
        m["preprocess"].erase("pad_value");
    }, "a letterbox resize needs pad_value");
    expect_manifest_fails("kind", [](json& m) { m["postprocess"]["kind"] = "boxes"; },
                          "postprocess.kind is \"boxes\"; expected one of ['heatmap', 'keypoints']");
    if (is_heatmap()) {
        expect_manifest_fails("threshold", [](json& m) { m["postprocess"]["threshold"] = 1.5; },
                              "postprocess.threshold is 1.5; expected a number in 0..1");
        expect_manifest_fails("channel-negative", [](json& m) { m["postprocess"]["channel"] = -1; },
                              "postprocess.channel is -1; expected an integer >= 0");
        expect_manifest_fails("channel-outside", [](json& m) { m["postprocess"]["channel"] = 99; },
                              "postprocess.channel 99 is outside output");
    } else {
        expect_manifest_fails("score-threshold", [](json& m) { m["postprocess"]["score_threshold"] = 1.5; },
                              "postprocess.score_threshold is 1.5; expected a number in 0..1");
        expect_manifest_fails("points", [](json& m) { m["postprocess"]["points"].push_back("extra"); },
                              ", 2) for points [");
        // The scores (N, K) and the angle (N,) or (N, 1), as runtime/_manifest.py requires.
        const std::string k = std::to_string(meta["keypoints"]["names"].size());
        const auto output = [](json& m, const std::string& name) -> json& {
            for (json& o : full_entry(m)["outputs"]) {
                if (o["name"] == name) return o;
            }
            std::fprintf(stderr, "the full graph has no output %s\n", name.c_str());
            std::exit(2);
        };
        expect_manifest_fails("same-output", [](json& m) { m["postprocess"]["scores_output"] = m["postprocess"]["points_output"]; },
                              "; expected (N, " + k + "), one score per point [");
        expect_manifest_fails("scores-rank", [&](json& m) {
            output(m, m["postprocess"]["scores_output"])["shape"].push_back(1);
        }, ", 1]; expected (N, " + k + "), one score per point [");
        expect_manifest_fails("scores-count", [&](json& m) {
            output(m, m["postprocess"]["scores_output"])["shape"][1] = meta["keypoints"]["names"].size() + 1;
        }, "; expected (N, " + k + "), one score per point [");
        expect_manifest_fails("scores-named", [&](json& m) {
            output(m, m["postprocess"]["scores_output"])["shape"][1] = "points";
        }, "is [N, N]; expected (N, " + k + "), one score per point [");
        if (meta["keypoints"]["has_angle"].get<bool>()) {
            expect_manifest_fails("scores-shape", [](json& m) { std::swap(m["postprocess"]["scores_output"], m["postprocess"]["angle_output"]); },
                                  "; expected (N, " + k + "), one score per point [");
            expect_manifest_fails("angle-two", [&](json& m) {
                output(m, m["postprocess"]["angle_output"])["shape"] = {"batch", 2};
            }, "is [N, 2]; expected (N,) or (N, 1), one angle per image");
            expect_manifest_fails("angle-rank", [&](json& m) {
                output(m, m["postprocess"]["angle_output"])["shape"] = {"batch", 1, 1};
            }, "is [N, 1, 1]; expected (N,) or (N, 1), one angle per image");
        }
    }
    // preprocess.min_size: optional, an integer in 1..min(height, width).
    const int64_t smaller = std::min(meta["height"].get<int64_t>(), meta["width"].get<int64_t>());
    const std::string size = meta["height"].dump() + "x" + meta["width"].dump();
    expect_manifest_fails("min-size-0", [](json& m) { m["preprocess"]["min_size"] = 0; },
                          "preprocess.min_size is 0; expected an integer >= 1");
    expect_manifest_fails("min-size-true", [](json& m) { m["preprocess"]["min_size"] = true; },
                          "preprocess.min_size is true; expected an integer >= 1");
    expect_manifest_fails("min-size-float", [](json& m) { m["preprocess"]["min_size"] = 1.5; },
                          "preprocess.min_size is 1.5; expected an integer >= 1");
    expect_manifest_fails("min-size-large", [&](json& m) { m["preprocess"]["min_size"] = smaller + 1; },
                          "preprocess.min_size is " + std::to_string(smaller + 1) + "; expected an integer in 1.." +
                              std::to_string(smaller) + " (an image of the graph's own size " + size +
                              " must be accepted)");
    // preprocess.color_order: optional, exactly "rgb" or "bgr" (runtime._imageio.COLOR_ORDERS).
    for (const json& bad : {json("BGR"), json("rgba"), json(""), json(1), json(nullptr)}) {
        const std::string expected = bad.is_string() && !bad.get<std::string>().empty()
                                         ? "preprocess.color_order is " + bad.dump() + "; expected one of ['rgb', 'bgr']"
                                         : "preprocess.color_order is " + bad.dump() + "; expected a non-empty string";
        expect_manifest_fails("color-order", [&](json& m) { m["preprocess"]["color_order"] = bad; }, expected);
    }
    expect_manifest_fails("image-shape", [](json& m) {
        json& shape = full_entry(m)["inputs"][0]["shape"];
        shape[1] = shape[1].get<int64_t>() + 1;
    }, "the preprocess makes float32 (N, ");
    expect_manifest_fails("role", [](json& m) { full_entry(m)["inputs"][0]["role"] = "Image"; },
                          "role is \"Image\"; expected a string matching ^[a-z][a-z0-9_]*$");
    expect_manifest_fails("dtype", [](json& m) { full_entry(m)["outputs"][0]["dtype"] = "float16"; },
                          "is float16; libruntime feeds float32 inputs and reads float32 outputs");
    expect_manifest_fails("extra-input", [](json& m) {
        full_entry(m)["inputs"].push_back({{"name", "extra"}, {"shape", {"batch", 1}}, {"dtype", "float32"}, {"role", "hint"}});
    }, "libruntime feeds one input, the image");
    expect_manifest_fails("escape", [](json& m) {
        const std::string file = full_entry(m)["file"];
        full_entry(m)["file"] = "../" + file;
        m["default_graph"] = "../" + file;
    }, "expected a plain file name inside the bundle");
    expect_manifest_fails("default", [](json& m) { m["default_graph"] = "other.onnx"; },
                          "default_graph is \"other.onnx\"; expected one of the graphs' files");

    const fs::path tampered = copy_bundle("tampered");
    fs::copy_file(fixture / "tampered.fp32.onnx", tampered / meta["full_graph"].get<std::string>(),
                  fs::copy_options::overwrite_existing);
    expect_create_fails(tampered, RUNTIME_ERR_MODEL_LOAD, "does not match its manifest: sha256");
    runtime_session_options unchecked;
    runtime_session_options_init(&unchecked);
    unchecked.verify_sha256 = 0;
    runtime_session_destroy(open(tampered, &unchecked));  // opt-out loads

    // A truncated graph: the hash catches it before the engine sees it.
    const fs::path truncated = copy_bundle("truncated");
    fs::resize_file(truncated / meta["full_graph"].get<std::string>(), 1000);
    expect_create_fails(truncated, RUNTIME_ERR_MODEL_LOAD, "(truncated, modified or from another export)");

    const fs::path missing_graph = copy_bundle("missing-graph");
    fs::remove(missing_graph / meta["full_graph"].get<std::string>());
    expect_create_fails(missing_graph, RUNTIME_ERR_MODEL_LOAD, "listed in the manifest is missing");

    // The lone graph: embedded hash, then a file that is not ONNX.
    expect_create_fails(fixture / "tampered.fp32.onnx", RUNTIME_ERR_MODEL_LOAD, "does not match its embedded manifest");
    expect_create_fails(fixture / "fixture.json", RUNTIME_ERR_MODEL_LOAD, "not a valid ONNX model");

    runtime_session_options options;
    runtime_session_options_init(&options);
    options.precision = RUNTIME_PRECISION_INT8;
    expect_create_fails(fixture / "bundle", RUNTIME_ERR_MODEL_LOAD, "the bundle has no full graph in int8; it has [", &options);
    runtime_session_options_init(&options);
    options.backend = 42;
    expect_create_fails(fixture / "bundle", RUNTIME_ERR_INVALID_ARGUMENT, "options->backend 42", &options);
    runtime_session_options_init(&options);
    options.intra_op_threads = -1;
    expect_create_fails(fixture / "bundle", RUNTIME_ERR_INVALID_ARGUMENT, "intra_op_threads is -1", &options);
    runtime_session_options_init(&options);
    options.struct_size = 3;
    expect_create_fails(fixture / "bundle", RUNTIME_ERR_INVALID_ARGUMENT, "struct_size is 3", &options);

    // ONNX Runtime's CPU wheel has no CUDA provider: a clear backend error.
    if (!std::getenv("RUNTIME_TEST_HAS_CUDA")) {
        runtime_session_options_init(&options);
        options.device = RUNTIME_DEVICE_GPU;
        expect_create_fails(fixture / "bundle", RUNTIME_ERR_BACKEND, "on the GPU (CUDA provider)", &options);
    }
    fs::remove_all(fixture / ("cases-" + std::to_string(::getpid())));
}

void test_bad_inputs() {
    runtime_session* session = open(fixture / "bundle");
    if (!session) return;
    const Image image = load_image(fixture, meta["images"][0]);
    const std::vector<int64_t> accepted = meta["accepted_channels"];
    const std::vector<int64_t> read = meta["read_channels"];
    const double low = meta["source_range"][0], high = meta["source_range"][1];
    const int64_t h = image.height, w = image.width, c = image.channels;
    const std::size_t plane = std::size_t(h * w);

    // Shapes and layouts.
    const int64_t too_many = *std::max_element(accepted.begin(), accepted.end()) + 1;
    std::vector<float> wide(std::size_t(too_many) * plane, float(low));
    expect_status(run_all(session, make_input(wide.data(), 1, too_many, h, w)).status, RUNTIME_ERR_INVALID_INPUT,
                  "channels, got " + std::to_string(too_many) + " (shape (1, " + std::to_string(too_many) + ", " +
                      std::to_string(h) + ", " + std::to_string(w) + ") CHW)");
    if (!letterboxed()) {
        expect_status(run_all(session, make_input(wide.data(), 1, c, h - 1, w)).status, RUNTIME_ERR_INVALID_INPUT,
                      "expected " + std::to_string(h) + "x" + std::to_string(w) + " (height x width), got " +
                          std::to_string(h - 1) + "x" + std::to_string(w));
    }
    expect_status(run_all(session, make_input(image.data.data(), 0, c, h, w)).status, RUNTIME_ERR_INVALID_INPUT,
                  "batch must be at least 1");
    expect_status(run_all(session, make_input(image.data.data(), 1, c, h, w, 7)).status, RUNTIME_ERR_INVALID_ARGUMENT,
                  "layout 7");
    const std::vector<std::string> layouts = meta["accepted_layouts"];
    if (std::find(layouts.begin(), layouts.end(), "HWC") == layouts.end()) {
        expect_status(run_all(session, make_input(image.data.data(), 1, c, h, w, RUNTIME_LAYOUT_HWC)).status,
                      RUNTIME_ERR_INVALID_INPUT, "layout HWC is not accepted");
    }

    // Values of the channels read: finite, in the source range, not scaled by the caller.
    std::vector<float> values = image.data;
    const runtime_input in = make_input(values.data(), 1, c, h, w);
    values[std::size_t(read[0]) * plane + 3] = std::numeric_limits<float>::quiet_NaN();
    values[std::size_t(read.back()) * plane + 5] = std::numeric_limits<float>::infinity();
    expect_status(run_all(session, in).status, RUNTIME_ERR_INVALID_INPUT, "contains 2 NaN or infinite value(s)");
    values = image.data;
    values[std::size_t(read[0]) * plane + 3] = float(low - 2.0);
    values[std::size_t(read[0]) * plane + 4] = float(high + 45.0);
    expect_status(run_all(session, in).status, RUNTIME_ERR_INVALID_INPUT, "values out of range in the image: min ");
    values = image.data;
    values[std::size_t(read[0]) * plane] = float(high + 0.0005);  // rounding noise within the tolerance is clipped
    CHECK_MSG(run_all(session, in).status == RUNTIME_OK, runtime_last_error());
    // Channels not read (e.g. a production mask) are neither checked nor used: the widest
    // accepted image, its extra channels NaN, gives the same outputs.
    const int64_t widest = *std::max_element(accepted.begin(), accepted.end());
    if (widest > c) {
        std::vector<float> padded = image.data;
        padded.resize(std::size_t(widest) * plane, std::numeric_limits<float>::quiet_NaN());
        const Result narrow = run_all(session, make_input(image));
        const Result wider = run_all(session, make_input(padded.data(), 1, widest, h, w));
        CHECK_MSG(wider.status == RUNTIME_OK, runtime_last_error());
        for (std::size_t k = 0; k < narrow.tensors.size() && k < wider.tensors.size(); ++k) {
            CHECK(max_abs_diff(narrow.tensors[k].data(), wider.tensors[k].data(), narrow.tensors[k].size()) == 0.0f);
        }
    }
    if (high > 1.0) {
        std::fill(values.begin(), values.end(), 0.5f);
        expect_status(run_all(session, in).status, RUNTIME_ERR_INVALID_INPUT, "values look like 0..1");
        std::fill(values.begin(), values.end(), 1.0f);  // an all-0/1 image is a valid image
        CHECK_MSG(run_all(session, in).status == RUNTIME_OK, runtime_last_error());
    }
    values = image.data;

    // NULL pointers and uninitialised structs.
    const std::size_t count = output_count(session);
    std::vector<runtime_tensor_buffer> buffers(count, runtime_tensor_buffer{nullptr, 0, 0});
    runtime_outputs out;
    runtime_outputs_init(&out);
    out.tensors = buffers.data();
    out.count = count;
    expect_status(runtime_session_run(nullptr, &in, &out), RUNTIME_ERR_INVALID_ARGUMENT, "session is NULL");
    expect_status(runtime_session_run(session, nullptr, &out), RUNTIME_ERR_INVALID_ARGUMENT, "input is NULL");
    expect_status(runtime_session_run(session, &in, nullptr), RUNTIME_ERR_INVALID_ARGUMENT, "outputs is NULL");
    runtime_input no_data = make_input(nullptr, 1, c, h, w);
    expect_status(runtime_session_run(session, &no_data, &out), RUNTIME_ERR_INVALID_ARGUMENT, "input->data is NULL");
    runtime_input bad_size = in;
    bad_size.struct_size = 8;
    expect_status(runtime_session_run(session, &bad_size, &out), RUNTIME_ERR_INVALID_ARGUMENT,
                  "runtime_input->struct_size is 8");
    runtime_outputs bad_out = out;
    bad_out.struct_size = 1;
    expect_status(runtime_session_run(session, &in, &bad_out), RUNTIME_ERR_INVALID_ARGUMENT,
                  "runtime_outputs->struct_size is 1");
    bad_out = out;
    bad_out.count = count + 1;
    expect_status(runtime_session_run(session, &in, &bad_out), RUNTIME_ERR_INVALID_ARGUMENT,
                  "outputs->count is " + std::to_string(count + 1));
    bad_out.count = count;
    bad_out.tensors = nullptr;
    expect_status(runtime_session_run(session, &in, &bad_out), RUNTIME_ERR_INVALID_ARGUMENT, "outputs->tensors is NULL");
    CHECK(runtime_session_get_info(session, nullptr) == RUNTIME_ERR_INVALID_ARGUMENT);
    runtime_session_info short_info;
    runtime_session_info_init(&short_info);
    short_info.struct_size = 4;
    expect_status(runtime_session_get_info(session, &short_info), RUNTIME_ERR_INVALID_ARGUMENT,
                  "runtime_session_info->struct_size is 4");
    CHECK(runtime_session_output_count(session, nullptr) == RUNTIME_ERR_INVALID_ARGUMENT);
    std::size_t index = 0;
    CHECK(runtime_session_find_output(session, nullptr, &index) == RUNTIME_ERR_INVALID_ARGUMENT);
    std::size_t needed = 0;
    expect_status(runtime_session_run_heatmap(session, &in, nullptr, 0, nullptr, nullptr),
                  RUNTIME_ERR_INVALID_ARGUMENT, "needed is NULL");

    // Sizes: a query with every buffer NULL, then a too-small buffer: distinct status, nothing written.
    std::vector<float> two(values);
    two.insert(two.end(), values.begin(), values.end());
    const runtime_input batch2 = make_input(two.data(), 2, c, h, w);
    expect_status(runtime_session_run(session, &batch2, &out), RUNTIME_ERR_BUFFER_TOO_SMALL, "no output buffer given");
    std::vector<std::vector<float>> sinks;
    for (std::size_t k = 0; k < count; ++k) {
        std::size_t per_image = 1;
        for (const auto& d : meta["outputs"][k]["shape"]) per_image *= d.get<int64_t>() < 0 ? 1 : std::size_t(d.get<int64_t>());
        CHECK(buffers[k].needed == 2 * per_image);
        sinks.emplace_back(buffers[k].needed, -7.0f);
        buffers[k].data = sinks.back().data();
        buffers[k].capacity = buffers[k].needed;
    }
    CHECK(out.transform.source_width == w && out.transform.source_height == h);  // set even without running
    buffers[0].capacity = 1;
    expect_status(runtime_session_run(session, &batch2, &out), RUNTIME_ERR_BUFFER_TOO_SMALL,
                  "buffer holds 1 floats, " + std::to_string(buffers[0].needed) + " needed");
    for (const auto& sink : sinks) CHECK(std::all_of(sink.begin(), sink.end(), [](float v) { return v == -7.0f; }));
    if (is_heatmap()) {
        std::vector<float> heat(1);
        expect_status(runtime_session_run_heatmap(session, &batch2, heat.data(), heat.size(), &needed, nullptr),
                      RUNTIME_ERR_BUFFER_TOO_SMALL, "heatmap buffer holds 1 floats");
        CHECK(needed > 1);
    }

    // The last error is per thread.
    std::string other;
    std::thread([&] { other = runtime_last_error(); }).join();
    CHECK(other.empty());
    CHECK(std::strlen(runtime_last_error()) > 0);
    runtime_session_destroy(session);
}

// preprocess.min_size: an image with fewer pixels on a side is refused before it is
// resized or its layout is looked at, and nothing is written; one of exactly
// that size runs. A family whose manifest leaves it at 1 is tested on a bundle copy that
// sets it.
void test_min_size() {
    const json& lb = meta["letterbox"];
    fs::path bundle = fixture / lb["bundle"].get<std::string>();
    int64_t least = lb["min_size"];
    const int64_t smaller = std::min(meta["height"].get<int64_t>(), meta["width"].get<int64_t>());
    if (least == 1) {
        least = std::min<int64_t>(8, smaller);
        bundle = copy_bundle("min-size", bundle);
        json manifest = load_json(bundle / "manifest.json");
        manifest["preprocess"]["min_size"] = least;
        write_text(bundle / "manifest.json", manifest.dump(2));
    }
    if (least < 2) {
        std::printf("min_size: the graph's input is one pixel on a side; no image is smaller\n");
        return;
    }
    runtime_session* session = open(bundle);
    if (!session) return;
    const int64_t c = load_image(fixture, lb, "input").channels;
    const std::string needs = "; the model needs at least " + std::to_string(least) + " pixels on each side";
    const std::vector<float> pixels(std::size_t(std::max<int64_t>(99, 2 * c) * (least + 5) * (least + 5)),
                                    float(meta["source_range"][0].get<double>()));

    // Buffers sized by a query on an image of exactly min_size, then filled with a mark.
    std::vector<runtime_tensor_buffer> buffers(output_count(session), runtime_tensor_buffer{nullptr, 0, 0});
    runtime_outputs out;
    runtime_outputs_init(&out);
    out.tensors = buffers.data();
    out.count = buffers.size();
    const runtime_input fits = make_input(pixels.data(), 1, c, least, least);
    expect_status(runtime_session_run(session, &fits, &out), RUNTIME_ERR_BUFFER_TOO_SMALL, "no output buffer given");
    std::vector<std::vector<float>> sinks;
    for (auto& b : buffers) {
        sinks.emplace_back(2 * b.needed, -7.0f);  // room for a batch of two
        b.data = sinks.back().data();
        b.capacity = sinks.back().size();
    }
    const auto untouched = [&] {
        bool same = out.transform.scale_x == -1.0 && out.transform.source_width == -1;
        for (const auto& b : buffers) same = same && b.needed == 12345;
        for (const auto& sink : sinks) same = same && std::all_of(sink.begin(), sink.end(), [](float v) { return v == -7.0f; });
        return same;
    };
    struct Case {
        runtime_input input;
        std::string message;
    };
    const std::string small = std::to_string(least - 1), large = std::to_string(least + 5);
    const std::vector<Case> cases = {
        {make_input(pixels.data(), 1, c, least - 1, least + 5),
         "image too small: " + small + "x" + large + " (height x width, shape (1, " + std::to_string(c) + ", " + small +
             ", " + large + ") CHW)" + needs},
        {make_input(pixels.data(), 1, c, least + 5, least - 1, RUNTIME_LAYOUT_HWC),
         "image too small: " + large + "x" + small + " (height x width, shape (1, " + large + ", " + small + ", " +
             std::to_string(c) + ") HWC)" + needs},
        {make_input(pixels.data(), 2, c, least - 1, least - 1), "image too small: " + small + "x" + small},
        // Too small and a channel count the model refuses: the channels are reported, as in Python.
        {make_input(pixels.data(), 1, 99, least - 1, least), "channels, got 99 (shape (1, 99, " + small + ", " +
                                                                 std::to_string(least) + ") CHW)"},
    };
    for (const Case& bad : cases) {
        for (auto& b : buffers) b.needed = 12345;
        out.transform.scale_x = -1.0;
        out.transform.source_width = -1;
        expect_status(runtime_session_run(session, &bad.input, &out), RUNTIME_ERR_INVALID_INPUT, bad.message);
        CHECK_MSG(untouched(), "a refused image changed the outputs");
        std::size_t needed = 777;
        if (is_heatmap()) {
            std::vector<float> heat(sinks[0].size(), -7.0f);
            expect_status(runtime_session_run_heatmap(session, &bad.input, heat.data(), heat.size(), &needed, nullptr),
                          RUNTIME_ERR_INVALID_INPUT, bad.message);
            CHECK(std::all_of(heat.begin(), heat.end(), [](float v) { return v == -7.0f; }));
        }
        if (is_keypoints()) {
            std::vector<runtime_keypoints> sink(2);
            unsigned char* bytes = reinterpret_cast<unsigned char*>(sink.data());
            std::memset(bytes, 0x5A, sink.size() * sizeof(runtime_keypoints));
            expect_status(runtime_session_run_keypoints(session, &bad.input, sink.data(), sink.size(), &needed),
                          RUNTIME_ERR_INVALID_INPUT, bad.message);
            CHECK(std::all_of(bytes, bytes + sink.size() * sizeof(runtime_keypoints),
                              [](unsigned char b) { return b == 0x5A; }));
        }
        CHECK(needed == 777);
    }
    // Exactly min_size on each side, either layout: it runs.
    CHECK_MSG(runtime_session_run(session, &fits, &out) == RUNTIME_OK, runtime_last_error());
    const runtime_input fits_hwc = make_input(pixels.data(), 1, c, least, least, RUNTIME_LAYOUT_HWC);
    CHECK_MSG(runtime_session_run(session, &fits_hwc, &out) == RUNTIME_OK, runtime_last_error());
    CHECK(out.transform.source_width == least && out.transform.source_height == least);
    std::printf("min_size %lld: smaller images refused, %lldx%lld runs\n", (long long)least, (long long)least,
                (long long)least);
    runtime_session_destroy(session);
    fs::remove_all(fixture / ("cases-" + std::to_string(::getpid())));
}

// runtime_session_run_keypoints on a batch: a size query, then one struct per image.
struct KeypointRun {
    runtime_status status = RUNTIME_OK;
    std::size_t needed = 0;
    std::vector<runtime_keypoints> keypoints;
};

KeypointRun run_keypoints(runtime_session* session, const runtime_input& in) {
    KeypointRun run;
    run.status = runtime_session_run_keypoints(session, &in, nullptr, 0, &run.needed);
    if (run.status != RUNTIME_ERR_BUFFER_TOO_SMALL) return run;
    run.keypoints.resize(run.needed);
    run.status = runtime_session_run_keypoints(session, &in, run.keypoints.data(), run.keypoints.size(), &run.needed);
    return run;
}

bool same_keypoints(const runtime_keypoints& a, const runtime_keypoints& b) {
    bool same = a.count == b.count && a.has_angle == b.has_angle && a.angle == b.angle &&
                a.transform.scale_x == b.transform.scale_x && a.transform.pad_x == b.transform.pad_x &&
                a.transform.scale_y == b.transform.scale_y && a.transform.pad_y == b.transform.pad_y;
    for (std::size_t k = 0; k < RUNTIME_MAX_KEYPOINTS; ++k) {
        same = same && a.x[k] == b.x[k] && a.y[k] == b.y[k] && a.score[k] == b.score[k];
    }
    return same;
}

// One image's points against what the Python runtime decoded (fixture.json):
// the largest distance in source pixels. Scores, angle and the unused entries
// are checked on the way.
double compare_keypoints(const runtime_keypoints& got, const json& want) {
    const std::size_t count = meta["keypoints"]["names"].size();
    CHECK(got.count == count);
    double worst = 0.0;
    for (std::size_t k = 0; k < count && k < RUNTIME_MAX_KEYPOINTS; ++k) {
        const double dx = got.x[k] - want["points"][k][0].get<double>();
        const double dy = got.y[k] - want["points"][k][1].get<double>();
        worst = std::max(worst, std::isfinite(dx + dy) ? std::hypot(dx, dy) : INFINITY);
        const double score = want["scores"][k].get<double>();
        CHECK_MSG(std::fabs(got.score[k] - score) < 1e-4,
                  "score " + std::to_string(got.score[k]) + ", Python " + std::to_string(score));
    }
    for (std::size_t k = count; k < RUNTIME_MAX_KEYPOINTS; ++k) {
        CHECK(got.x[k] == 0.0 && got.y[k] == 0.0 && got.score[k] == 0.0);
    }
    CHECK(bool(got.has_angle) == !want["angle"].is_null());
    if (want["angle"].is_null()) {
        CHECK(got.angle == 0.0);
    } else {
        CHECK_MSG(std::fabs(got.angle - want["angle"].get<double>()) < 1e-3,
                  "angle " + std::to_string(got.angle) + ", Python " + std::to_string(want["angle"].get<double>()));
    }
    return worst;
}

void check_keypoints(const runtime_keypoints& got, const json& want, const std::string& what) {
    const double worst = compare_keypoints(got, want);
    CHECK_MSG(worst < kPointTolerance, what + ": points " + std::to_string(worst) + " px from the Python runtime's");
    std::printf("keypoints %s vs python runtime: max distance %.3g px\n", what.c_str(), worst);
}

// A caller built against ABI 2 passes the shorter runtime_session_info: it gets
// the fields it has and nothing is written past them.
void check_old_info(runtime_session* session) {
    struct {
        runtime_session_info info;
        unsigned char guard[32];
    } old;
    runtime_session_info_init(&old.info);
    const std::size_t old_size = offsetof(runtime_session_info, has_keypoints);
    old.info.struct_size = old_size;
    unsigned char* bytes = reinterpret_cast<unsigned char*>(&old);
    std::memset(bytes + old_size, 0x5A, sizeof(old) - old_size);
    CHECK_MSG(runtime_session_get_info(session, &old.info) == RUNTIME_OK, runtime_last_error());
    CHECK(old.info.struct_size == old_size && old.info.family != nullptr &&
          std::string(old.info.family) == meta["family"].get<std::string>());
    CHECK(std::all_of(bytes + old_size, bytes + sizeof(old), [](unsigned char b) { return b == 0x5A; }));
}

void test_keypoints() {
    runtime_session* session = open(fixture / "bundle");
    if (!session) return;
    check_old_info(session);
    runtime_session_info info;
    runtime_session_info_init(&info);
    CHECK(runtime_session_get_info(session, &info) == RUNTIME_OK);
    CHECK(bool(info.has_keypoints) == is_keypoints());
    const Image first = load_image(fixture, meta["images"][0]);
    const runtime_input in = make_input(first);
    std::size_t needed = 99;
    const char* name = nullptr;
    if (!is_keypoints()) {
        CHECK(info.keypoint_count == 0 && info.keypoint_threshold == 0.0);
        runtime_keypoints sink{};
        expect_status(runtime_session_run_keypoints(session, &in, &sink, 1, &needed), RUNTIME_ERR_INVALID_ARGUMENT,
                      "has postprocess kind '" + meta["kind"].get<std::string>() +
                          "', not keypoints; use runtime_session_run");
        CHECK(needed == 99 && sink.count == 0);
        expect_status(runtime_session_keypoint_name(session, 0, &name), RUNTIME_ERR_INVALID_ARGUMENT,
                      "not keypoints: it names no points");
        CHECK(name == nullptr);
        runtime_session_destroy(session);
        std::printf("keypoints: kind %s, refused as expected\n", meta["kind"].get<std::string>().c_str());
        return;
    }

    // The facts: names, threshold.
    const json& facts = meta["keypoints"];
    const std::size_t count = facts["names"].size();
    CHECK(info.keypoint_count == count && info.keypoint_threshold == facts["threshold"].get<double>());
    for (std::size_t k = 0; k < count; ++k) {
        CHECK(runtime_session_keypoint_name(session, k, &name) == RUNTIME_OK && name != nullptr &&
              std::string(name) == facts["names"][k].get<std::string>());
    }
    expect_status(runtime_session_keypoint_name(session, count, &name), RUNTIME_ERR_INVALID_ARGUMENT,
                  "keypoint index " + std::to_string(count) + " is out of range; the model has " +
                      std::to_string(count) + " points");
    expect_status(runtime_session_keypoint_name(session, 0, nullptr), RUNTIME_ERR_INVALID_ARGUMENT, "name is NULL");
    expect_status(runtime_session_keypoint_name(nullptr, 0, &name), RUNTIME_ERR_INVALID_ARGUMENT, "session is NULL");

    // NULL arguments and a size query.
    runtime_keypoints one{};
    expect_status(runtime_session_run_keypoints(nullptr, &in, &one, 1, &needed), RUNTIME_ERR_INVALID_ARGUMENT,
                  "session is NULL");
    expect_status(runtime_session_run_keypoints(session, nullptr, &one, 1, &needed), RUNTIME_ERR_INVALID_ARGUMENT,
                  "input is NULL");
    expect_status(runtime_session_run_keypoints(session, &in, &one, 1, nullptr), RUNTIME_ERR_INVALID_ARGUMENT,
                  "needed is NULL");
    runtime_input bad_size = in;
    bad_size.struct_size = 8;
    expect_status(runtime_session_run_keypoints(session, &bad_size, &one, 1, &needed), RUNTIME_ERR_INVALID_ARGUMENT,
                  "runtime_input->struct_size is 8");
    CHECK(one.count == 0);
    expect_status(runtime_session_run_keypoints(session, &in, nullptr, 0, &needed), RUNTIME_ERR_BUFFER_TOO_SMALL,
                  "no keypoints buffer given; 1 runtime_keypoints needed (one per image)");
    CHECK(needed == 1);

    // Each image against the Python runtime, against the raw outputs mapped by
    // runtime_map_to_source, and in the HWC layout.
    std::vector<Image> images;
    std::vector<runtime_keypoints> singles;
    for (const json& entry : meta["images"]) {
        const Image image = load_image(fixture, entry);
        const KeypointRun got = run_keypoints(session, make_input(image));
        CHECK_MSG(got.status == RUNTIME_OK && got.keypoints.size() == 1, runtime_last_error());
        if (got.status != RUNTIME_OK || got.keypoints.size() != 1) continue;
        const runtime_keypoints& k = got.keypoints[0];
        check_keypoints(k, entry["keypoints"], entry["file"].get<std::string>());
        CHECK(same_transform(k.transform, entry["transform"]));

        const Result raw = run_all(session, make_input(image));
        CHECK_MSG(raw.status == RUNTIME_OK, runtime_last_error());
        const std::vector<float>& points = raw.tensors.at(facts["outputs"]["points"].get<std::size_t>());
        const std::vector<float>& scores = raw.tensors.at(facts["outputs"]["scores"].get<std::size_t>());
        std::vector<double> xy(points.begin(), points.end());
        CHECK(xy.size() == 2 * count && runtime_map_to_source(&raw.transform, xy.data(), count) == RUNTIME_OK);
        for (std::size_t i = 0; i < count && 2 * i + 1 < xy.size(); ++i) {
            CHECK(k.x[i] == xy[2 * i] && k.y[i] == xy[2 * i + 1] && k.score[i] == double(scores.at(i)));
        }

        const std::vector<float> hwc = to_hwc(image.data, image.channels, image.height, image.width);
        const KeypointRun interleaved =
            run_keypoints(session, make_input(hwc.data(), 1, image.channels, image.height, image.width, RUNTIME_LAYOUT_HWC));
        CHECK(interleaved.status == RUNTIME_OK && interleaved.keypoints.size() == 1 &&
              same_keypoints(interleaved.keypoints[0], k));
        images.push_back(image);
        singles.push_back(k);
    }

    // A batch: one struct per image, as alone; too small a buffer and a bad input write nothing.
    bool same_size = images.size() > 1;
    for (const Image& image : images) {
        same_size = same_size && image.channels == images[0].channels && image.height == images[0].height &&
                    image.width == images[0].width;
    }
    if (same_size) {
        std::vector<float> data;
        for (const Image& image : images) data.insert(data.end(), image.data.begin(), image.data.end());
        const std::size_t n = images.size();
        runtime_input batch = make_input(data.data(), int64_t(n), images[0].channels, images[0].height, images[0].width);
        std::vector<runtime_keypoints> sink(n);
        unsigned char* bytes = reinterpret_cast<unsigned char*>(sink.data());
        const std::size_t size = n * sizeof(runtime_keypoints);
        std::memset(bytes, 0x5A, size);
        const auto untouched = [&] { return std::all_of(bytes, bytes + size, [](unsigned char b) { return b == 0x5A; }); };
        expect_status(runtime_session_run_keypoints(session, &batch, sink.data(), n - 1, &needed),
                      RUNTIME_ERR_BUFFER_TOO_SMALL,
                      "keypoints buffer holds " + std::to_string(n - 1) + " runtime_keypoints; " + std::to_string(n) +
                          " needed (one per image)");
        CHECK(needed == n && untouched());
        batch.channels = 99;
        needed = 0;
        expect_status(runtime_session_run_keypoints(session, &batch, sink.data(), n, &needed), RUNTIME_ERR_INVALID_INPUT,
                      "channels, got 99");
        CHECK(needed == 0 && untouched());
        batch.channels = images[0].channels;
        CHECK_MSG(runtime_session_run_keypoints(session, &batch, sink.data(), n, &needed) == RUNTIME_OK,
                  runtime_last_error());
        for (std::size_t i = 0; i < n && i < singles.size(); ++i) CHECK(same_keypoints(sink[i], singles[i]));
    }

    // Prescaled: the identity transform, the graph's own points.
    const std::vector<float> tensor0 = load_floats(fixture / meta["images"][0]["tensor"].get<std::string>());
    runtime_input prescaled = make_input(tensor0.data(), 1, meta["channels"], meta["height"], meta["width"]);
    prescaled.prescaled = 1;
    const KeypointRun direct = run_keypoints(session, prescaled);
    CHECK_MSG(direct.status == RUNTIME_OK && direct.keypoints.size() == 1, runtime_last_error());
    if (direct.status == RUNTIME_OK && direct.keypoints.size() == 1) {
        const auto refs = load_refs(fixture, meta["images"][0]["refs"]);
        const std::vector<float>& points = refs.at(facts["outputs"]["points"].get<std::size_t>());
        const runtime_keypoints& k = direct.keypoints[0];
        CHECK(k.transform.scale_x == 1.0 && k.transform.pad_x == 0 && k.transform.pad_y == 0);
        for (std::size_t i = 0; i < count; ++i) {
            CHECK(std::fabs(k.x[i] - points[2 * i]) < 1e-6 * std::max(1.0, std::fabs(double(points[2 * i]))));
            CHECK(std::fabs(k.y[i] - points[2 * i + 1]) < 1e-6 * std::max(1.0, std::fabs(double(points[2 * i + 1]))));
        }
    }

    // An image of another size, letterboxed.
    const json& lb = meta["letterbox"];
    runtime_session* boxed = open(fixture / lb["bundle"].get<std::string>());
    if (boxed) {
        const KeypointRun got = run_keypoints(boxed, make_input(load_image(fixture, lb, "input")));
        CHECK_MSG(got.status == RUNTIME_OK && got.keypoints.size() == 1, runtime_last_error());
        if (got.status == RUNTIME_OK && got.keypoints.size() == 1) {
            check_keypoints(got.keypoints[0], lb["keypoints"], "letterbox");
            CHECK(same_transform(got.keypoints[0].transform, lb["transform"]));
        }
        runtime_session_destroy(boxed);
    }

    // Concurrent calls on one session, each with its own buffer: the same structs.
    constexpr int kThreads = 4, kRuns = 3;
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads && !images.empty(); ++t) {
        threads.emplace_back([&, t] {
            for (int r = 0; r < kRuns; ++r) {
                const std::size_t i = std::size_t(t + r) % images.size();
                const KeypointRun got = run_keypoints(session, make_input(images[i]));
                if (got.status != RUNTIME_OK || got.keypoints.size() != 1 || !same_keypoints(got.keypoints[0], singles[i])) {
                    ++bad;
                }
            }
        });
    }
    for (auto& thread : threads) thread.join();
    CHECK_MSG(bad == 0, std::to_string(bad.load()) + " concurrent keypoint runs differ");
    runtime_session_destroy(session);

    // The lower layers emit raw outputs: refused, with the way out.
    for (const json& layer : meta["layers"]) {
        runtime_session_options options;
        runtime_session_options_init(&options);
        options.layer = layer["layer"] == "base" ? RUNTIME_LAYER_BASE : RUNTIME_LAYER_PATCH;
        runtime_session* lower = open(fixture / "bundle", &options);
        if (!lower) continue;
        runtime_session_info lower_info;
        runtime_session_info_init(&lower_info);
        CHECK(runtime_session_get_info(lower, &lower_info) == RUNTIME_OK);
        CHECK(lower_info.has_keypoints == 0 && lower_info.keypoint_count == count);
        const Image image = load_image(fixture, layer, "input");
        const runtime_input lower_in = make_input(image);
        expect_status(runtime_session_run_keypoints(lower, &lower_in, &one, 1, &needed), RUNTIME_ERR_INVALID_ARGUMENT,
                      "runtime_session_run_keypoints needs the full graph (layer full)");
        runtime_session_destroy(lower);
    }

    // A graph that returns a non-finite point, score or angle: a backend error, as the
    // Python runtime's (recorded by make_fixture.py), and nothing written.
    for (const json& poisoned : facts["nonfinite"]) {
        const std::string output = poisoned["output"];
        std::printf("keypoints: non-finite '%s'; Python: %s\n", output.c_str(),
                    poisoned["python_error"].get<std::string>().c_str());
        runtime_session* broken = open(fixture / poisoned["bundle"].get<std::string>());
        if (!broken) continue;
        std::vector<float> data;
        for (const Image& image : images) data.insert(data.end(), image.data.begin(), image.data.end());
        const std::size_t n = same_size ? images.size() : 1;
        std::string every = "for images 0";  // the offset is added to every image's output
        for (std::size_t i = 1; i < n; ++i) every += ", " + std::to_string(i);
        const std::vector<std::pair<runtime_input, std::string>> cases = {
            {in, "for the image; expected finite values"},
            {make_input(data.data(), int64_t(n), first.channels, first.height, first.width),
             n == 1 ? "for the image; expected finite values" : every + " of the batch; expected finite values"}};
        for (const auto& [batch, where] : cases) {
            std::vector<runtime_keypoints> sink(std::size_t(batch.batch));
            unsigned char* bytes = reinterpret_cast<unsigned char*>(sink.data());
            const std::size_t size = sink.size() * sizeof(runtime_keypoints);
            std::memset(bytes, 0x5A, size);
            needed = 0;
            expect_status(runtime_session_run_keypoints(broken, &batch, sink.data(), sink.size(), &needed),
                          RUNTIME_ERR_BACKEND, "the graph returned non-finite '" + output + "' " + where);
            CHECK(needed == sink.size());
            CHECK(std::all_of(bytes, bytes + size, [](unsigned char b) { return b == 0x5A; }));
        }
        // The raw outputs are the caller's to judge: runtime_session_run returns them as they are.
        const Result raw = run_all(broken, in);
        std::size_t index = 0;
        CHECK_MSG(raw.status == RUNTIME_OK, runtime_last_error());
        CHECK(runtime_session_find_output(broken, output.c_str(), &index) == RUNTIME_OK);
        CHECK(index < raw.tensors.size() && !raw.tensors[index].empty() && !std::isfinite(raw.tensors[index][0]));
        runtime_session_destroy(broken);
    }
    CHECK(facts["nonfinite"].size() == (facts["has_angle"].get<bool>() ? 3u : 2u));
}

void test_threads(runtime_backend backend, float tolerance_) {
    runtime_session_options options;
    runtime_session_options_init(&options);
    options.backend = backend;
    options.intra_op_threads = 1;
    runtime_session* session = open(fixture / "bundle", &options);
    if (!session) return;
    std::vector<Image> images;
    std::vector<std::vector<std::vector<float>>> refs;
    for (const json& entry : meta["images"]) {
        images.push_back(load_image(fixture, entry));
        refs.push_back(load_refs(fixture, entry["refs"]));
    }
    constexpr int kThreads = 8, kRuns = 3;
    std::atomic<int> bad{0}, failed_calls{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            // Each thread runs the images in turn, each call with its own buffers.
            for (int r = 0; r < kRuns; ++r) {
                const std::size_t i = std::size_t(t + r) % images.size();
                const Result result = run_all(session, make_input(images[i]));
                if (result.status != RUNTIME_OK) {
                    ++failed_calls;
                    std::fprintf(stderr, "thread %d: %s\n", t, runtime_last_error());
                    continue;
                }
                if (!(compare(result, refs[i]) < tolerance_)) ++bad;
            }
        });
    }
    for (auto& thread : threads) thread.join();
    CHECK(failed_calls == 0);
    CHECK_MSG(bad == 0, std::to_string(bad.load()) + " concurrent results differ from the reference");
    std::printf("threads (%s): %d threads x %d runs on one session\n",
                backend == RUNTIME_BACKEND_OPENVINO ? "openvino" : "onnxruntime", kThreads, kRuns);
    runtime_session_destroy(session);
}

void test_openvino() {
    if (!runtime_has_backend(RUNTIME_BACKEND_OPENVINO)) {
        std::printf("openvino: not available, skipped\n");
        return;
    }
    runtime_session_options options;
    runtime_session_options_init(&options);
    options.backend = RUNTIME_BACKEND_OPENVINO;
    runtime_session* session = open(fixture / "bundle", &options);
    if (!session) return;
    runtime_session_info info;
    runtime_session_info_init(&info);
    CHECK(runtime_session_get_info(session, &info) == RUNTIME_OK && info.backend == RUNTIME_BACKEND_OPENVINO);
    for (const json& entry : meta["images"]) {
        const Result result = run_all(session, make_input(load_image(fixture, entry)));
        CHECK_MSG(result.status == RUNTIME_OK, runtime_last_error());
        // Another engine: its kernels round differently, so not bit-exact.
        const float diff = compare(result, load_refs(fixture, entry["refs"]));
        CHECK_MSG(diff < 1e-4f, "openvino vs onnxruntime max diff " + std::to_string(diff));
        std::printf("openvino vs python onnxruntime: max diff %.3g\n", diff);
    }
    runtime_session_destroy(session);
    test_threads(RUNTIME_BACKEND_OPENVINO, 1e-4f);

    // An error raised inside the plugin reaches the caller as a status.
    if (!std::getenv("RUNTIME_TEST_HAS_GPU")) {
        options.device = RUNTIME_DEVICE_GPU;
        expect_create_fails(fixture / "bundle", RUNTIME_ERR_BACKEND, "OpenVINO cannot load", &options);
    }
}

void test_wrapper() {
    try {
        runtime::Session missing((fixture / "nope").string());
        CHECK(false);
    } catch (const runtime::Error& e) {
        CHECK(e.status() == RUNTIME_ERR_MODEL_LOAD);
        CHECK(std::string(e.what()).rfind("RUNTIME_ERR_MODEL_LOAD: no bundle directory", 0) == 0);
    }
    runtime::Session session((fixture / "bundle").string(), runtime::Options().with_threads(1));
    const std::vector<runtime::TensorInfo> inputs = session.inputs(), outputs = session.outputs();
    CHECK(inputs.size() == 1 && inputs[0].role == "image" && inputs[0].shape.size() == 4);
    CHECK(outputs.size() == meta["outputs"].size());
    const json& entry = meta["images"][0];
    const Image image = load_image(fixture, entry);
    const auto refs = load_refs(fixture, entry["refs"]);
    const runtime::Images images{image.data.data(), 1, image.channels, image.height, image.width, RUNTIME_LAYOUT_CHW};
    const runtime::Outputs result = session.run(images);
    CHECK(result.tensors.size() == refs.size());
    for (std::size_t k = 0; k < outputs.size() && k < result.tensors.size(); ++k) {
        const runtime::Tensor& t = result[outputs[k].name];
        CHECK(t.shape[0] == 1 && t.data.size() == refs[k].size());
        CHECK(session.find_output(outputs[k].name) == k);
        if (t.data.size() == refs[k].size()) CHECK(max_scaled_diff(t.data.data(), refs[k].data(), t.data.size()) < tolerance());
    }
    CHECK(same_transform(result.transform, entry["transform"]));
    CHECK(session.color_order() ==
          (meta["color_order"] == "bgr" ? RUNTIME_COLOR_ORDER_BGR : RUNTIME_COLOR_ORDER_RGB));
    try {
        (void)result["no-such-output"];
        CHECK(false);
    } catch (const runtime::Error& e) {
        CHECK(e.status() == RUNTIME_ERR_INVALID_ARGUMENT);
    }
    if (is_heatmap()) {
        const runtime::Heatmap heat = session.heatmap(images);
        const json& shape = meta["outputs"][meta["heatmap"]["output"].get<std::size_t>()]["shape"];
        CHECK(heat.batch == 1 && heat.height == shape[2] && heat.width == shape[3]);
        const std::vector<float> want = reference_heatmap(refs, shape);
        CHECK(heat.data.size() == want.size() && max_abs_diff(heat.data.data(), want.data(), want.size()) < tolerance());
    } else {
        try {
            session.heatmap(images);
            CHECK(false);
        } catch (const runtime::Error& e) {
            CHECK(e.status() == RUNTIME_ERR_INVALID_ARGUMENT);
        }
    }
    if (is_keypoints()) {
        const json& facts = meta["keypoints"];
        const std::vector<std::string> names = session.keypoint_names();
        CHECK(names == facts["names"].get<std::vector<std::string>>());
        const std::vector<runtime::Keypoints> found = session.run_keypoints(images);
        CHECK(found.size() == 1);
        if (found.size() == 1) {
            const runtime::Keypoints& k = found[0];
            CHECK(k.points.size() == names.size() && k.has_angle == facts["has_angle"].get<bool>());
            for (std::size_t i = 0; i < k.points.size() && i < names.size(); ++i) {
                const runtime::Keypoint& p = k[names[i]];
                CHECK(p.name == names[i]);
                const double dx = p.x - entry["keypoints"]["points"][i][0].get<double>();
                const double dy = p.y - entry["keypoints"]["points"][i][1].get<double>();
                CHECK_MSG(std::hypot(dx, dy) < kPointTolerance, "wrapper point " + p.name);
                CHECK(std::fabs(p.score - entry["keypoints"]["scores"][i].get<double>()) < 1e-4);
            }
            if (k.has_angle) CHECK(std::fabs(k.angle - entry["keypoints"]["angle"].get<double>()) < 1e-3);
            CHECK(same_transform(k.transform, entry["transform"]));
            try {
                (void)k["no-such-point"];
                CHECK(false);
            } catch (const runtime::Error& e) {
                CHECK(e.status() == RUNTIME_ERR_INVALID_ARGUMENT);
            }
        }
        runtime_keypoints raw[1];
        CHECK(session.run_keypoints(images, raw, 1) == 1 && raw[0].count == names.size());
        try {
            session.run_keypoints(images, raw, 0);
            CHECK(false);
        } catch (const runtime::Error& e) {
            CHECK(e.status() == RUNTIME_ERR_BUFFER_TOO_SMALL);
        }
    } else {
        CHECK(session.keypoint_names().empty());
        try {
            session.run_keypoints(images);
            CHECK(false);
        } catch (const runtime::Error& e) {
            CHECK(e.status() == RUNTIME_ERR_INVALID_ARGUMENT);
            CHECK(e.message().find("not keypoints") != std::string::npos);
        }
    }
    runtime::Session moved = std::move(session);
    CHECK(session.get() == nullptr && moved.get() != nullptr);
    try {
        runtime::Images bad = images;
        bad.channels = 99;
        moved.run(bad);
        CHECK(false);
    } catch (const runtime::Error& e) {
        CHECK(e.status() == RUNTIME_ERR_INVALID_INPUT);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s FIXTURE_DIR [parity|layers|letterbox|errors|threads|openvino|keypoints|wrapper]\n",
                     argv[0]);
        return 2;
    }
    fixture = argv[1];
    meta = load_json(fixture / "fixture.json");
    const std::string only = argc > 2 ? argv[2] : "";
    auto want = [&](const char* name) { return only.empty() || only == name; };
    if (want("parity")) test_parity();
    if (want("layers")) test_layers();
    if (want("letterbox")) {
        test_letterbox();
        test_min_size();
    }
    if (want("errors")) {
        test_bad_bundles();
        test_bad_inputs();
        test_color_order();
    }
    if (want("threads")) test_threads(RUNTIME_BACKEND_ONNXRUNTIME, tolerance());
    if (want("openvino")) test_openvino();
    if (want("keypoints")) test_keypoints();
    if (want("wrapper")) test_wrapper();
    if (testing_support::failures == 0) std::printf("all checks passed (%s)\n", meta["family"].get<std::string>().c_str());
    return testing_support::failures == 0 ? 0 : 1;
}
