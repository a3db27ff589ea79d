// create / run / destroy in a loop: the body of `make valgrind` (no definite
// leaks over 100 cycles) and a quick smoke test under CTest. Runs the smallest
// graph of each family fixture (patch if there is one) on the fixture's image,
// through the pre-processing (and the keypoint decoding where it applies), plus
// a failing call per cycle.
//
// Usage: test_cycles PATH [cycles=100] [backend=onnxruntime|openvino]
//   PATH: a family fixture (a directory with fixture.json, made by make_fixture.py),
//         or a directory of them (e.g. build/cpp/tests/cpp/fixture: every family).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "runtime/runtime.h"

using namespace testing_support;

namespace {

bool cycle(const fs::path& fixture, const runtime_session_options& base, int index) {
    const json meta = load_json(fixture / "fixture.json");
    runtime_session_options options = base;
    json source = meta["images"][0];
    const char* key = "file";
    for (const json& layer : meta["layers"]) {
        if (layer["layer"] == "patch") {
            options.layer = RUNTIME_LAYER_PATCH;  // the small graph keeps valgrind fast
            source = layer;
            key = "input";
        }
    }
    const Image image = load_image(fixture, source, key);
    runtime_session* session = nullptr;
    if (runtime_session_create((fixture / "bundle").c_str(), &options, &session) != RUNTIME_OK) {
        std::fprintf(stderr, "cycle %d: create: %s\n", index, runtime_last_error());
        return false;
    }
    runtime_input in = make_input(image);
    std::size_t count = 0;
    runtime_session_output_count(session, &count);
    std::vector<runtime_tensor_buffer> buffers(count, runtime_tensor_buffer{nullptr, 0, 0});
    runtime_outputs out;
    runtime_outputs_init(&out);
    out.tensors = buffers.data();
    out.count = count;
    runtime_session_run(session, &in, &out);  // size query
    std::vector<std::vector<float>> data;
    for (auto& b : buffers) {
        data.emplace_back(b.needed);
        b.data = data.back().data();
        b.capacity = b.needed;
    }
    bool ok = runtime_session_run(session, &in, &out) == RUNTIME_OK;
    if (!ok) std::fprintf(stderr, "cycle %d: run: %s\n", index, runtime_last_error());
    // The typed decoding where the graph has one (keypoints, full layer).
    runtime_session_info info;
    runtime_session_info_init(&info);
    ok = ok && runtime_session_get_info(session, &info) == RUNTIME_OK;
    if (ok && info.has_keypoints) {
        runtime_keypoints keypoints{};
        std::size_t needed = 0;
        ok = runtime_session_run_keypoints(session, &in, &keypoints, 1, &needed) == RUNTIME_OK;
        if (!ok) std::fprintf(stderr, "cycle %d: run_keypoints: %s\n", index, runtime_last_error());
    }
    // A failing call too: its error path must not leak either.
    in.channels = 99;
    ok = ok && runtime_session_run(session, &in, &out) == RUNTIME_ERR_INVALID_INPUT;
    runtime_session_destroy(session);
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s FIXTURE_DIR|FIXTURES_ROOT [cycles] [onnxruntime|openvino]\n", argv[0]);
        return 2;
    }
    const fs::path path = argv[1];
    const int cycles = argc > 2 ? std::atoi(argv[2]) : 100;
    const std::string backend = argc > 3 ? argv[3] : "onnxruntime";
    std::vector<fs::path> fixtures;
    if (fs::exists(path / "fixture.json")) {
        fixtures.push_back(path);
    } else if (fs::is_directory(path)) {
        for (const auto& entry : fs::directory_iterator(path)) {
            if (fs::exists(entry.path() / "fixture.json")) fixtures.push_back(entry.path());
        }
    }
    if (fixtures.empty()) {
        std::fprintf(stderr, "%s holds no fixture.json (run ctest -R 'runtime\\.fixture' first)\n", path.c_str());
        return 2;
    }
    runtime_session_options options;
    runtime_session_options_init(&options);
    options.intra_op_threads = 1;
    options.backend = backend == "openvino" ? RUNTIME_BACKEND_OPENVINO : RUNTIME_BACKEND_ONNXRUNTIME;
    for (const fs::path& fixture : fixtures) {
        for (int i = 0; i < cycles; ++i) {
            if (!cycle(fixture, options, i)) return 1;
        }
        std::printf("%s: %d create/run/destroy cycles (%s)\n", fixture.filename().c_str(), cycles, backend.c_str());
    }
    runtime_session* none = nullptr;
    if (runtime_session_create("/nonexistent", &options, &none) != RUNTIME_ERR_MODEL_LOAD) return 1;
    return 0;
}
