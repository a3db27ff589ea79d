// libruntime against the fixture made by make_fixture.py: parity with Python
// ONNX Runtime, every bad bundle and bad input, concurrency, the OpenVINO
// backend and the C++ wrapper.
//
// Usage: test_runtime FIXTURE_DIR [section]   (sections: parity errors threads openvino wrapper; default all)
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>
#include <unistd.h>

#include "check.hpp"
#include "runtime/runtime.h"
#include "runtime/runtime.hpp"

namespace fs = std::filesystem;

namespace {

fs::path fixture;
constexpr int64_t kBatch = 2, kChannels = 4, kHeight = 976, kWidth = 176, kPatch = 128;

std::vector<float> load_floats(const fs::path& path) {
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

float max_abs_diff(const float* a, const float* b, std::size_t n) {
    float worst = 0.0f;
    for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
    return worst;
}

std::vector<float> to_hwc(const std::vector<float>& chw, int64_t batch, int64_t channels, int64_t h, int64_t w) {
    std::vector<float> hwc(chw.size());
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t c = 0; c < channels; ++c)
            for (int64_t i = 0; i < h * w; ++i)
                hwc[std::size_t((b * h * w + i) * channels + c)] = chw[std::size_t((b * channels + c) * h * w + i)];
    return hwc;
}

runtime_input make_input(const float* data, int64_t batch, int64_t channels, int64_t h, int64_t w,
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

runtime_session* open(const fs::path& path, runtime_session_options* options = nullptr) {
    runtime_session* session = nullptr;
    const runtime_status status = runtime_session_create(path.c_str(), options, &session);
    CHECK_MSG(status == RUNTIME_OK, runtime_last_error());
    return session;
}

// Status and a substring of the message.
void expect_create_fails(const fs::path& path, runtime_status expected, const char* fragment,
                         runtime_session_options* options = nullptr) {
    runtime_session* session = reinterpret_cast<runtime_session*>(0x1);
    const runtime_status status = runtime_session_create(path.c_str(), options, &session);
    CHECK_MSG(status == expected, std::string(runtime_status_string(status)) + ": " + runtime_last_error());
    CHECK(session == nullptr);
    CHECK_MSG(std::strstr(runtime_last_error(), fragment) != nullptr,
              std::string("message '") + runtime_last_error() + "' lacks '" + fragment + "'");
}

void expect_run_fails(runtime_session* session, const runtime_input* in, runtime_output* out, runtime_status expected,
                      const char* fragment) {
    const runtime_status status = runtime_session_run(session, in, out);
    CHECK_MSG(status == expected, std::string(runtime_status_string(status)) + ": " + runtime_last_error());
    CHECK_MSG(std::strstr(runtime_last_error(), fragment) != nullptr,
              std::string("message '") + runtime_last_error() + "' lacks '" + fragment + "'");
}

void test_parity() {
    const std::vector<float> input = load_floats(fixture / "input.f32");
    const std::vector<float> ref = load_floats(fixture / "ref_full.f32");
    const std::size_t plane = std::size_t(kHeight * kWidth);
    runtime_session* session = open(fixture / "bundle");
    if (!session) return;

    runtime_session_info info{};
    info.struct_size = sizeof(info);
    CHECK(runtime_session_get_info(session, &info) == RUNTIME_OK);
    CHECK(std::string(info.graph_file) == "model.fp32.onnx");
    CHECK(std::string(info.layer) == "full" && std::string(info.precision) == "fp32");
    CHECK(std::string(info.family) == "brn");
    CHECK(info.height == kHeight && info.width == kWidth && info.output_channels == 3 && info.has_heatmap);
    CHECK(info.backend == RUNTIME_BACKEND_ONNXRUNTIME);
    int64_t dims[4];
    std::size_t rank = 0;
    CHECK(runtime_session_input_shape(session, dims, 4, &rank) == RUNTIME_OK);
    CHECK(rank == 4 && dims[0] == -1 && dims[1] == 3 && dims[2] == kHeight && dims[3] == kWidth);
    CHECK(runtime_session_output_shape(session, dims, 2, &rank) == RUNTIME_ERR_BUFFER_TOO_SMALL && rank == 4);

    // CHW 4-channel batch: raw and heatmap both.
    std::vector<float> raw(ref.size()), heat(kBatch * plane);
    runtime_input in = make_input(input.data(), kBatch, kChannels, kHeight, kWidth);
    runtime_output out;
    runtime_output_init(&out);
    out.raw = raw.data();
    out.raw_capacity = raw.size();
    out.heatmap = heat.data();
    out.heatmap_capacity = heat.size();
    CHECK_MSG(runtime_session_run(session, &in, &out) == RUNTIME_OK, runtime_last_error());
    const float raw_diff = max_abs_diff(raw.data(), ref.data(), ref.size());
    CHECK_MSG(raw_diff < 1e-6f, "raw max abs diff " + std::to_string(raw_diff));
    float heat_diff = 0.0f;
    for (int64_t b = 0; b < kBatch; ++b) {
        heat_diff = std::max(heat_diff, max_abs_diff(heat.data() + b * plane, ref.data() + b * 3 * plane, plane));
    }
    CHECK_MSG(heat_diff < 1e-6f, "heatmap max abs diff " + std::to_string(heat_diff));
    std::printf("parity full fp32: raw %.3g, heatmap %.3g\n", raw_diff, heat_diff);

    // HWC of the same images gives the same heatmap; heatmap-only output.
    const std::vector<float> hwc = to_hwc(input, kBatch, kChannels, kHeight, kWidth);
    std::vector<float> heat2(heat.size());
    in = make_input(hwc.data(), kBatch, kChannels, kHeight, kWidth, RUNTIME_LAYOUT_HWC);
    runtime_output_init(&out);
    out.heatmap = heat2.data();
    out.heatmap_capacity = heat2.size();
    CHECK_MSG(runtime_session_run(session, &in, &out) == RUNTIME_OK, runtime_last_error());
    CHECK(max_abs_diff(heat.data(), heat2.data(), heat.size()) == 0.0f);

    // 3 channels (the mask dropped by the caller) give the same result too.
    std::vector<float> three(std::size_t(3) * plane);
    std::copy_n(input.begin(), three.size(), three.begin());
    in = make_input(three.data(), 1, 3, kHeight, kWidth);
    CHECK_MSG(runtime_session_run(session, &in, &out) == RUNTIME_OK, runtime_last_error());
    CHECK(max_abs_diff(heat.data(), heat2.data(), plane) == 0.0f);
    runtime_session_destroy(session);

    // The lone graph file, with its embedded manifest.
    session = open(fixture / "bundle" / "model.fp32.onnx");
    if (session) {
        in = make_input(input.data(), kBatch, kChannels, kHeight, kWidth);
        runtime_output_init(&out);
        out.raw = raw.data();
        out.raw_capacity = raw.size();
        CHECK_MSG(runtime_session_run(session, &in, &out) == RUNTIME_OK, runtime_last_error());
        CHECK(max_abs_diff(raw.data(), ref.data(), ref.size()) < 1e-6f);
        runtime_session_destroy(session);
    }

    // The same graph from memory, fed the already-scaled tensor.
    {
        std::ifstream file(fixture / "bundle" / "model.fp32.onnx", std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
        runtime_session* from_memory = nullptr;
        CHECK_MSG(runtime_session_create_from_memory(bytes.data(), bytes.size(), "model.fp32.onnx", nullptr,
                                                     &from_memory) == RUNTIME_OK,
                  runtime_last_error());
        std::vector<float> scaled(std::size_t(kBatch) * 3 * plane);
        for (int64_t b = 0; b < kBatch; ++b)
            for (std::size_t i = 0; i < 3 * plane; ++i)
                scaled[std::size_t(b) * 3 * plane + i] = input[std::size_t(b) * kChannels * plane + i] * float(1.0 / 255.0);
        in = make_input(scaled.data(), kBatch, 3, kHeight, kWidth);
        in.prescaled = 1;
        runtime_output_init(&out);
        out.raw = raw.data();
        out.raw_capacity = raw.size();
        CHECK_MSG(runtime_session_run(from_memory, &in, &out) == RUNTIME_OK, runtime_last_error());
        CHECK(max_abs_diff(raw.data(), ref.data(), ref.size()) < 1e-6f);
        in.channels = 4;
        expect_run_fails(from_memory, &in, &out, RUNTIME_ERR_INVALID_INPUT, "a prescaled input must be the graph's tensor");
        runtime_session_destroy(from_memory);
        runtime_session* none = nullptr;
        CHECK(runtime_session_create_from_memory(bytes.data(), 100, nullptr, nullptr, &none) == RUNTIME_ERR_MODEL_LOAD);
        CHECK(none == nullptr);
    }

    // Patch and base layers.
    const std::vector<float> patch = load_floats(fixture / "patch_input.f32");
    for (auto [layer, file, channels] : {std::tuple{RUNTIME_LAYER_PATCH, "ref_patch.f32", 3},
                                         std::tuple{RUNTIME_LAYER_BASE, "ref_base.f32", 2}}) {
        runtime_session_options options;
        runtime_session_options_init(&options);
        options.layer = layer;
        session = open(fixture / "bundle", &options);
        if (!session) continue;
        const std::vector<float> expected = load_floats(fixture / file);
        std::vector<float> got(expected.size());
        in = make_input(patch.data(), kBatch, kChannels, kPatch, kPatch);
        runtime_output_init(&out);
        out.raw = got.data();
        out.raw_capacity = got.size();
        CHECK_MSG(runtime_session_run(session, &in, &out) == RUNTIME_OK, runtime_last_error());
        const float diff = max_abs_diff(got.data(), expected.data(), expected.size());
        CHECK_MSG(diff < 1e-6f, std::string(file) + " max abs diff " + std::to_string(diff));
        CHECK(out.raw_needed == std::size_t(kBatch * channels * kPatch * kPatch));
        if (layer == RUNTIME_LAYER_BASE) {
            std::vector<float> h(std::size_t(kBatch * kPatch * kPatch));
            out.heatmap = h.data();
            out.heatmap_capacity = h.size();
            expect_run_fails(session, &in, &out, RUNTIME_ERR_INVALID_ARGUMENT, "emits logits, not a heatmap");
        }
        runtime_session_destroy(session);
    }
}

fs::path scratch_dir(const char* name) {
    const fs::path dir = fixture / ("cases-" + std::to_string(::getpid())) / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

void copy_bundle(const fs::path& to) {
    for (const auto& entry : fs::directory_iterator(fixture / "bundle")) fs::copy(entry.path(), to / entry.path().filename());
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::string read_text(const fs::path& path) {
    std::ifstream stream(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
}

void replace_in_file(const fs::path& path, const std::string& from, const std::string& to) {
    std::string text = read_text(path);
    const auto at = text.find(from);
    CHECK_MSG(at != std::string::npos, "'" + from + "' not in " + path.string());
    if (at != std::string::npos) text.replace(at, from.size(), to);
    write_text(path, text);
}

void test_bad_bundles() {
    expect_create_fails(fixture / "no-such-bundle", RUNTIME_ERR_MODEL_LOAD, "no bundle directory or graph file");

    const fs::path empty = scratch_dir("empty");
    expect_create_fails(empty, RUNTIME_ERR_MODEL_LOAD, "no manifest.json in");

    const fs::path bad_json = scratch_dir("bad-json");
    copy_bundle(bad_json);
    write_text(bad_json / "manifest.json", "{\"schema_version\": 1, \"family\": ");
    expect_create_fails(bad_json, RUNTIME_ERR_MODEL_LOAD, "cannot read");
    write_text(bad_json / "manifest.json", "[1, 2]");
    expect_create_fails(bad_json, RUNTIME_ERR_MODEL_LOAD, "expected a JSON object, got array");
    write_text(bad_json / "manifest.json", "{\"schema_version\": 1}");
    expect_create_fails(bad_json, RUNTIME_ERR_MODEL_LOAD, "missing fields ['family'");

    const fs::path schema = scratch_dir("schema");
    copy_bundle(schema);
    replace_in_file(schema / "manifest.json", "\"schema_version\": 1", "\"schema_version\": 99");
    expect_create_fails(schema, RUNTIME_ERR_MODEL_LOAD, "schema_version 99 is not supported");

    const fs::path escape = scratch_dir("escape");
    copy_bundle(escape);
    replace_in_file(escape / "manifest.json", "\"file\": \"model.fp32.onnx\"", "\"file\": \"../model.fp32.onnx\"");
    expect_create_fails(escape, RUNTIME_ERR_MODEL_LOAD, "must be a plain file name");

    const fs::path tampered = scratch_dir("tampered");
    copy_bundle(tampered);
    fs::copy_file(fixture / "tampered.fp32.onnx", tampered / "model.fp32.onnx", fs::copy_options::overwrite_existing);
    expect_create_fails(tampered, RUNTIME_ERR_MODEL_LOAD, "does not match its manifest: sha256");
    runtime_session_options unchecked;
    runtime_session_options_init(&unchecked);
    unchecked.verify_sha256 = 0;
    runtime_session_destroy(open(tampered, &unchecked));  // opt-out loads

    // A truncated graph: the hash catches it before the engine sees it.
    const fs::path truncated = scratch_dir("truncated");
    copy_bundle(truncated);
    fs::resize_file(truncated / "model.fp32.onnx", 1000);
    expect_create_fails(truncated, RUNTIME_ERR_MODEL_LOAD, "(truncated, modified or from another export)");

    const fs::path missing_graph = scratch_dir("missing-graph");
    copy_bundle(missing_graph);
    fs::remove(missing_graph / "model.fp32.onnx");
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
    const std::size_t plane = std::size_t(kHeight * kWidth);
    std::vector<float> image(std::size_t(5) * plane, 100.0f), heat(plane), raw(3 * plane);
    runtime_output out;
    runtime_output_init(&out);
    out.heatmap = heat.data();
    out.heatmap_capacity = heat.size();

    runtime_input in = make_input(image.data(), 1, 5, kHeight, kWidth);
    expect_run_fails(session, &in, &out, RUNTIME_ERR_INVALID_INPUT,
                     "expected 3 or 4 channels, got 5 (shape (1, 5, 976, 176) CHW)");
    in.channels = 2;
    expect_run_fails(session, &in, &out, RUNTIME_ERR_INVALID_INPUT, "expected 3 or 4 channels, got 2");
    in = make_input(image.data(), 1, 3, 128, 128);
    expect_run_fails(session, &in, &out, RUNTIME_ERR_INVALID_INPUT, "expected 976x176 (height x width), got 128x128");
    in = make_input(image.data(), 0, 3, kHeight, kWidth);
    expect_run_fails(session, &in, &out, RUNTIME_ERR_INVALID_INPUT, "batch must be at least 1");
    in = make_input(image.data(), 1, 3, kHeight, kWidth, 7);
    expect_run_fails(session, &in, &out, RUNTIME_ERR_INVALID_ARGUMENT, "layout 7");

    in = make_input(image.data(), 1, 3, kHeight, kWidth);
    image[123] = std::numeric_limits<float>::quiet_NaN();
    image[456] = std::numeric_limits<float>::infinity();
    expect_run_fails(session, &in, &out, RUNTIME_ERR_INVALID_INPUT, "contains 2 NaN or infinite value(s)");
    image[123] = 300.0f;
    image[456] = -2.0f;
    expect_run_fails(session, &in, &out, RUNTIME_ERR_INVALID_INPUT, "values out of range in the image: min -2, max 300");
    std::fill(image.begin(), image.end(), 0.5f);
    expect_run_fails(session, &in, &out, RUNTIME_ERR_INVALID_INPUT, "values look like 0..1");
    std::fill(image.begin(), image.end(), 1.0f);  // an all-0/1 image is a valid 0..255 image
    CHECK_MSG(runtime_session_run(session, &in, &out) == RUNTIME_OK, runtime_last_error());
    image[0] = 255.0005f;  // rounding noise within the tolerance is clipped, as in Python
    CHECK_MSG(runtime_session_run(session, &in, &out) == RUNTIME_OK, runtime_last_error());
    std::fill(image.begin(), image.end(), 100.0f);

    // NULL pointers.
    expect_run_fails(nullptr, &in, &out, RUNTIME_ERR_INVALID_ARGUMENT, "session is NULL");
    expect_run_fails(session, nullptr, &out, RUNTIME_ERR_INVALID_ARGUMENT, "input is NULL");
    expect_run_fails(session, &in, nullptr, RUNTIME_ERR_INVALID_ARGUMENT, "output is NULL");
    runtime_input no_data = make_input(nullptr, 1, 3, kHeight, kWidth);
    expect_run_fails(session, &no_data, &out, RUNTIME_ERR_INVALID_ARGUMENT, "input->data is NULL");
    runtime_input bad_size = in;
    bad_size.struct_size = 8;
    expect_run_fails(session, &bad_size, &out, RUNTIME_ERR_INVALID_ARGUMENT, "runtime_input->struct_size is 8");
    CHECK(runtime_session_get_info(session, nullptr) == RUNTIME_ERR_INVALID_ARGUMENT);
    std::size_t rank = 0;
    CHECK(runtime_session_input_shape(session, nullptr, 4, &rank) == RUNTIME_ERR_INVALID_ARGUMENT);
    CHECK(runtime_session_input_shape(session, nullptr, 0, nullptr) == RUNTIME_ERR_INVALID_ARGUMENT);

    // Too-small buffers: distinct status, the size needed, nothing written.
    std::vector<float> two(std::size_t(6) * plane, 100.0f);
    runtime_input batch2 = make_input(two.data(), 2, 3, kHeight, kWidth);
    std::fill(heat.begin(), heat.end(), -7.0f);
    expect_run_fails(session, &batch2, &out, RUNTIME_ERR_BUFFER_TOO_SMALL, "heatmap buffer holds 171776 floats; 343552 needed");
    CHECK(out.heatmap_needed == 2 * plane && out.raw_needed == 6 * plane);
    CHECK(std::all_of(heat.begin(), heat.end(), [](float v) { return v == -7.0f; }));
    runtime_output sizes;
    runtime_output_init(&sizes);
    expect_run_fails(session, &batch2, &sizes, RUNTIME_ERR_BUFFER_TOO_SMALL, "no output buffer given");
    CHECK(sizes.heatmap_needed == 2 * plane && sizes.raw_needed == 6 * plane);
    runtime_output small_raw;
    runtime_output_init(&small_raw);
    small_raw.raw = raw.data();
    small_raw.raw_capacity = raw.size();
    expect_run_fails(session, &batch2, &small_raw, RUNTIME_ERR_BUFFER_TOO_SMALL, "raw buffer holds");
    runtime_output bad_out = out;
    bad_out.struct_size = 1;
    expect_run_fails(session, &in, &bad_out, RUNTIME_ERR_INVALID_ARGUMENT, "runtime_output->struct_size is 1");

    // The last error is per thread.
    std::string other;
    std::thread([&] { other = runtime_last_error(); }).join();
    CHECK(other.empty());
    CHECK(std::strlen(runtime_last_error()) > 0);
    runtime_session_destroy(session);
}

void test_threads(runtime_backend backend, float tolerance) {
    const std::vector<float> input = load_floats(fixture / "input.f32");
    const std::vector<float> ref = load_floats(fixture / "ref_full.f32");
    runtime_session_options options;
    runtime_session_options_init(&options);
    options.backend = backend;
    options.intra_op_threads = 1;
    runtime_session* session = open(fixture / "bundle", &options);
    if (!session) return;
    const std::size_t plane = std::size_t(kHeight * kWidth);
    constexpr int kThreads = 8, kRuns = 3;
    std::atomic<int> bad{0};
    std::atomic<int> failed_calls{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            // Each thread runs one of the two images, alternating, into its own buffer.
            std::vector<float> heat(plane);
            for (int r = 0; r < kRuns; ++r) {
                const int64_t b = (t + r) % kBatch;
                runtime_input in = make_input(input.data() + b * kChannels * plane, 1, kChannels, kHeight, kWidth);
                runtime_output out;
                runtime_output_init(&out);
                out.heatmap = heat.data();
                out.heatmap_capacity = heat.size();
                if (runtime_session_run(session, &in, &out) != RUNTIME_OK) {
                    ++failed_calls;
                    std::fprintf(stderr, "thread %d: %s\n", t, runtime_last_error());
                    continue;
                }
                if (max_abs_diff(heat.data(), ref.data() + b * 3 * plane, plane) >= tolerance) ++bad;
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
    const std::vector<float> input = load_floats(fixture / "input.f32");
    const std::vector<float> ref = load_floats(fixture / "ref_full.f32");
    runtime_session_options options;
    runtime_session_options_init(&options);
    options.backend = RUNTIME_BACKEND_OPENVINO;
    runtime_session* session = open(fixture / "bundle", &options);
    if (!session) return;
    runtime_session_info info{};
    info.struct_size = sizeof(info);
    CHECK(runtime_session_get_info(session, &info) == RUNTIME_OK && info.backend == RUNTIME_BACKEND_OPENVINO);
    std::vector<float> raw(ref.size());
    runtime_input in = make_input(input.data(), kBatch, kChannels, kHeight, kWidth);
    runtime_output out;
    runtime_output_init(&out);
    out.raw = raw.data();
    out.raw_capacity = raw.size();
    CHECK_MSG(runtime_session_run(session, &in, &out) == RUNTIME_OK, runtime_last_error());
    const float diff = max_abs_diff(raw.data(), ref.data(), ref.size());
    // Another engine: its kernels round differently, so not bit-exact.
    CHECK_MSG(diff < 1e-4f, "openvino vs onnxruntime max abs diff " + std::to_string(diff));
    std::printf("openvino vs python onnxruntime: max abs diff %.3g\n", diff);
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
    runtime::Session session((fixture / "bundle").string(), runtime::Options().with_layer(RUNTIME_LAYER_PATCH));
    CHECK(session.input_shape() == (std::vector<int64_t>{-1, 3, kPatch, kPatch}));
    const std::vector<float> patch = load_floats(fixture / "patch_input.f32");
    const std::vector<float> ref = load_floats(fixture / "ref_patch.f32");
    runtime::Images images{patch.data(), kBatch, kChannels, kPatch, kPatch, RUNTIME_LAYOUT_CHW};
    const std::vector<float> raw = session.raw(images);
    CHECK(max_abs_diff(raw.data(), ref.data(), ref.size()) < 1e-6f);
    const std::vector<float> heat = session.heatmap(images);
    CHECK(heat.size() == std::size_t(kBatch * kPatch * kPatch));
    CHECK(max_abs_diff(heat.data(), ref.data(), std::size_t(kPatch * kPatch)) < 1e-6f);
    runtime::Session moved = std::move(session);
    CHECK(session.get() == nullptr && moved.get() != nullptr);
    try {
        images.channels = 7;
        moved.heatmap(images);
        CHECK(false);
    } catch (const runtime::Error& e) {
        CHECK(e.status() == RUNTIME_ERR_INVALID_INPUT);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s FIXTURE_DIR [parity|errors|threads|openvino|wrapper]\n", argv[0]);
        return 2;
    }
    fixture = argv[1];
    const std::string only = argc > 2 ? argv[2] : "";
    auto want = [&](const char* name) { return only.empty() || only == name; };
    if (want("parity")) test_parity();
    if (want("errors")) {
        test_bad_bundles();
        test_bad_inputs();
    }
    if (want("threads")) test_threads(RUNTIME_BACKEND_ONNXRUNTIME, 1e-6f);
    if (want("openvino")) test_openvino();
    if (want("wrapper")) test_wrapper();
    if (testing_support::failures == 0) std::printf("all checks passed\n");
    return testing_support::failures == 0 ? 0 : 1;
}
