// create / run / destroy in a loop: the body of `make valgrind` (no definite
// leaks over 100 cycles) and a quick smoke test under CTest.
//
// Usage: test_cycles BUNDLE [cycles=100] [backend=onnxruntime|openvino]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/runtime.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s BUNDLE [cycles] [onnxruntime|openvino]\n", argv[0]);
        return 2;
    }
    const int cycles = argc > 2 ? std::atoi(argv[2]) : 100;
    const std::string backend = argc > 3 ? argv[3] : "onnxruntime";
    runtime_session_options options;
    runtime_session_options_init(&options);
    options.layer = RUNTIME_LAYER_PATCH;  // the small graph keeps valgrind fast
    options.intra_op_threads = 1;
    options.backend = backend == "openvino" ? RUNTIME_BACKEND_OPENVINO : RUNTIME_BACKEND_ONNXRUNTIME;
    std::vector<float> image(4 * 128 * 128, 100.0f), heat(128 * 128);
    for (std::size_t i = 0; i < image.size(); ++i) image[i] = float((i * 7919) % 256);
    for (int cycle = 0; cycle < cycles; ++cycle) {
        runtime_session* session = nullptr;
        if (runtime_session_create(argv[1], &options, &session) != RUNTIME_OK) {
            std::fprintf(stderr, "cycle %d: create: %s\n", cycle, runtime_last_error());
            return 1;
        }
        runtime_input in;
        runtime_input_init(&in);
        in.data = image.data();
        in.channels = 4;
        in.height = in.width = 128;
        runtime_output out;
        runtime_output_init(&out);
        out.heatmap = heat.data();
        out.heatmap_capacity = heat.size();
        if (runtime_session_run(session, &in, &out) != RUNTIME_OK) {
            std::fprintf(stderr, "cycle %d: run: %s\n", cycle, runtime_last_error());
            runtime_session_destroy(session);
            return 1;
        }
        // A failing call too: its error path must not leak either.
        in.channels = 5;
        if (runtime_session_run(session, &in, &out) != RUNTIME_ERR_INVALID_INPUT) return 1;
        runtime_session_destroy(session);
    }
    runtime_session* none = nullptr;
    if (runtime_session_create("/nonexistent", &options, &none) != RUNTIME_ERR_MODEL_LOAD) return 1;
    std::printf("%d create/run/destroy cycles (%s)\n", cycles, backend.c_str());
    return 0;
}
