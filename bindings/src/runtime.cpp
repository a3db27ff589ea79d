// The C entry points of libruntime and the session they drive.
//
// Each entry point runs its body inside guarded(): the body may throw, the
// caller only ever sees a status and the per-thread message (ONNX Runtime's
// API_IMPL_BEGIN/END pattern).
#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

#include "internal.hpp"

using runtime::detail::Backend;
using runtime::detail::Error;
using runtime::detail::fail;
using runtime::detail::GraphEntry;
using runtime::detail::Manifest;

struct runtime_session {
    std::string family;
    std::string graph_file;
    std::string layer;
    std::string precision;
    std::string input_name;
    std::string output_name;
    int32_t backend = RUNTIME_BACKEND_ONNXRUNTIME;
    int32_t device = RUNTIME_DEVICE_CPU;
    runtime::detail::Preprocess preprocess;
    runtime::detail::Postprocess postprocess;
    std::vector<int64_t> input_shape;   // (-1, C, H, W)
    std::vector<int64_t> output_shape;  // (-1, OC, H, W)
    bool has_heatmap = false;
    std::unique_ptr<Backend> engine;
};

namespace {

thread_local std::string last_error;

template <class Body>
runtime_status guarded(Body&& body) noexcept {
    try {
        last_error.clear();
        body();
        return RUNTIME_OK;
    } catch (const Error& exc) {
        try {
            last_error = exc.what();
        } catch (...) {
        }
        return exc.status();
    } catch (const std::bad_alloc&) {
        last_error = "out of memory";
        return RUNTIME_ERR_INTERNAL;
    } catch (const std::exception& exc) {
        try {
            last_error = std::string("internal error: ") + exc.what();
        } catch (...) {
        }
        return RUNTIME_ERR_INTERNAL;
    } catch (...) {
        last_error = "internal error: unknown exception";
        return RUNTIME_ERR_INTERNAL;
    }
}

void require(const void* pointer, const char* name) {
    if (pointer == nullptr) fail(RUNTIME_ERR_INVALID_ARGUMENT, std::string(name) + " is NULL");
}

// A struct from a caller compiled against an older header is shorter: take what
// it has over our defaults. A newer, longer one: read the fields we know.
template <class T>
T sized_copy(const T* given, T defaults, const char* name, std::size_t minimum) {
    if (given->struct_size < minimum) {
        fail(RUNTIME_ERR_INVALID_ARGUMENT, std::string(name) + "->struct_size is " +
                                               std::to_string(given->struct_size) + ", expected " +
                                               std::to_string(sizeof(T)) + "; initialise it with " + name + "_init()");
    }
    std::memcpy(static_cast<void*>(&defaults), given, std::min(given->struct_size, sizeof(T)));
    defaults.struct_size = sizeof(T);
    return defaults;
}

const char* layer_name(int32_t layer) {
    switch (layer) {
        case RUNTIME_LAYER_BASE: return "base";
        case RUNTIME_LAYER_PATCH: return "patch";
        case RUNTIME_LAYER_FULL:
        case RUNTIME_LAYER_DEFAULT: return "full";
    }
    fail(RUNTIME_ERR_INVALID_ARGUMENT, "options->layer " + std::to_string(int(layer)) + " is not a runtime_layer");
}

const char* precision_name(int32_t precision) {
    switch (precision) {
        case RUNTIME_PRECISION_FP16: return "fp16";
        case RUNTIME_PRECISION_INT8: return "int8";
        case RUNTIME_PRECISION_FP32:
        case RUNTIME_PRECISION_DEFAULT: return "fp32";
    }
    fail(RUNTIME_ERR_INVALID_ARGUMENT,
         "options->precision " + std::to_string(int(precision)) + " is not a runtime_precision");
}

std::string short_hash(const std::string& hex) { return hex.substr(0, 16) + "..."; }

const GraphEntry& select_graph(const Manifest& manifest, const runtime_session_options& options,
                               const std::string& source) {
    const char* layer = layer_name(options.layer);
    const char* precision = precision_name(options.precision);
    if (options.layer == RUNTIME_LAYER_DEFAULT && options.precision == RUNTIME_PRECISION_DEFAULT &&
        !manifest.default_graph.empty()) {
        for (const GraphEntry& g : manifest.graphs) {
            if (g.file == manifest.default_graph) return g;
        }
        fail(RUNTIME_ERR_MODEL_LOAD,
             source + ": default_graph '" + manifest.default_graph + "' is not among the manifest's graphs");
    }
    std::string have;
    for (const GraphEntry& g : manifest.graphs) {
        if (g.layer == layer && g.precision == precision) return g;
        have += (have.empty() ? "" : ", ") + g.layer + "/" + g.precision;
    }
    fail(RUNTIME_ERR_MODEL_LOAD, std::string("the bundle has no ") + layer + " graph in " + precision + "; it has [" +
                                     have + "]");
}

// A lone graph: its manifest and hash travel in its own metadata.
void read_embedded(const std::vector<char>& model, const std::string& source, const runtime_session_options& options,
                   Manifest& manifest, GraphEntry& entry) {
    const runtime::detail::OnnxFacts facts = runtime::detail::scan_onnx(model, source);
    const std::string* embedded = nullptr;
    const std::string* vouched = nullptr;
    for (const auto& [key, value] : facts.metadata) {
        if (key == "sdk.manifest") embedded = &value;
        if (key == "sdk.graph_sha256") vouched = &value;
    }
    if (embedded == nullptr) {
        fail(RUNTIME_ERR_MODEL_LOAD, source + " carries no embedded manifest (metadata 'sdk.manifest'); "
                                              "was it written by export.build? Load its bundle directory instead");
    }
    manifest = runtime::detail::parse_manifest(*embedded, source + " (metadata sdk.manifest)", true);
    entry = manifest.graphs.front();
    if (options.verify_sha256) {
        if (vouched == nullptr) fail(RUNTIME_ERR_MODEL_LOAD, source + " carries no 'sdk.graph_sha256' metadata");
        const std::string actual = runtime::detail::sha256_hex(facts.graph, facts.graph_size);
        if (actual != *vouched) {
            fail(RUNTIME_ERR_MODEL_LOAD, "graph " + source + " does not match its embedded manifest: sha256 " +
                                             short_hash(actual) + ", expected " + short_hash(*vouched) +
                                             " (modified after export)");
        }
    }
}

void check_options(const runtime_session_options& options) {
    if (options.backend != RUNTIME_BACKEND_AUTO && options.backend != RUNTIME_BACKEND_ONNXRUNTIME &&
        options.backend != RUNTIME_BACKEND_OPENVINO) {
        fail(RUNTIME_ERR_INVALID_ARGUMENT,
             "options->backend " + std::to_string(int(options.backend)) + " is not a runtime_backend");
    }
    if (options.device != RUNTIME_DEVICE_CPU && options.device != RUNTIME_DEVICE_GPU) {
        fail(RUNTIME_ERR_INVALID_ARGUMENT,
             "options->device " + std::to_string(int(options.device)) + " is not a runtime_device");
    }
    if (options.intra_op_threads < 0) {
        fail(RUNTIME_ERR_INVALID_ARGUMENT,
             "options->intra_op_threads is " + std::to_string(options.intra_op_threads) + "; expected 0 or more");
    }
}

std::unique_ptr<runtime_session> make_session(const Manifest& manifest, const GraphEntry& entry,
                                              const std::vector<char>& model, const std::string& graph_path,
                                              const runtime_session_options& options);

std::unique_ptr<runtime_session> load(const std::string& path, const runtime_session_options& options) {
    check_options(options);

    struct stat info {};
    if (path.empty() || ::stat(path.c_str(), &info) != 0) {
        fail(RUNTIME_ERR_MODEL_LOAD, "no bundle directory or graph file at '" + path + "'");
    }
    Manifest manifest;
    GraphEntry entry;
    std::vector<char> model;
    std::string graph_path;
    if (S_ISDIR(info.st_mode)) {
        const std::string manifest_path = path + "/manifest.json";
        struct stat m {};
        if (::stat(manifest_path.c_str(), &m) != 0 || !S_ISREG(m.st_mode)) {
            fail(RUNTIME_ERR_MODEL_LOAD, "no manifest.json in " + path + "; is it an export bundle?");
        }
        const std::vector<char> text = runtime::detail::read_file(manifest_path, "manifest");
        manifest = runtime::detail::parse_manifest(std::string(text.begin(), text.end()), manifest_path, false);
        entry = select_graph(manifest, options, path);
        graph_path = path + "/" + entry.file;
        struct stat g {};
        if (::stat(graph_path.c_str(), &g) != 0 || !S_ISREG(g.st_mode)) {
            fail(RUNTIME_ERR_MODEL_LOAD, "graph " + graph_path + " listed in the manifest is missing");
        }
        model = runtime::detail::read_file(graph_path, "graph");
        if (options.verify_sha256) {
            const std::string actual = runtime::detail::sha256_hex(model.data(), model.size());
            if (actual != entry.sha256) {
                fail(RUNTIME_ERR_MODEL_LOAD, "graph " + graph_path + " does not match its manifest: sha256 " +
                                                 short_hash(actual) + ", expected " + short_hash(entry.sha256) +
                                                 " (truncated, modified or from another export)");
            }
        }
    } else {
        graph_path = path;
        model = runtime::detail::read_file(path, "graph");
        read_embedded(model, path, options, manifest, entry);
    }

    return make_session(manifest, entry, model, graph_path, options);
}

std::unique_ptr<runtime_session> make_session(const Manifest& manifest, const GraphEntry& entry,
                                              const std::vector<char>& model, const std::string& graph_path,
                                              const runtime_session_options& options) {
    auto session = std::make_unique<runtime_session>();
    session->family = manifest.family;
    session->graph_file = entry.file;
    session->layer = entry.layer;
    session->precision = entry.precision;
    session->input_name = entry.inputs[0].name;
    session->output_name = entry.outputs[0].name;
    session->preprocess = manifest.preprocess;
    session->postprocess = manifest.postprocess;
    session->input_shape = {-1, entry.inputs[0].shape[1], entry.inputs[0].shape[2], entry.inputs[0].shape[3]};
    session->output_shape = {-1, entry.outputs[0].shape[1], entry.outputs[0].shape[2], entry.outputs[0].shape[3]};
    if (session->output_shape[2] != session->input_shape[2] || session->output_shape[3] != session->input_shape[3]) {
        fail(RUNTIME_ERR_MODEL_LOAD, graph_path + ": output size differs from input size; not an image-to-heatmap graph");
    }
    // The base layer emits logits; only the wrapped layers carry the heatmap channel.
    session->has_heatmap = entry.layer != "base" && manifest.postprocess.channel >= 0 &&
                           manifest.postprocess.channel < session->output_shape[1];
    session->device = options.device;

    runtime::detail::LoadRequest request;
    request.model = &model;
    request.path = graph_path;
    request.input_name = session->input_name;
    request.output_name = session->output_name;
    request.device = options.device;
    request.threads = options.intra_op_threads;
    request.spinning = options.allow_spinning != 0;
    if (options.backend == RUNTIME_BACKEND_OPENVINO) {
        session->backend = RUNTIME_BACKEND_OPENVINO;
        session->engine = runtime::detail::make_openvino_backend(request);
    } else {
        session->backend = RUNTIME_BACKEND_ONNXRUNTIME;
        session->engine = runtime::detail::make_onnxruntime_backend(request);
    }
    return session;
}

// Grow-only scratch buffers per thread: no allocation per call in a steady
// loop, and concurrent calls never share one.
float* scratch(std::vector<float>& buffer, std::size_t count) {
    if (buffer.size() < count) {
        buffer.clear();
        buffer.shrink_to_fit();
        buffer.resize(count);
    }
    return buffer.data();
}

void run(runtime_session& s, const runtime_input& in, runtime_output& out) {
    require(in.data, "input->data");
    const int64_t channels = s.input_shape[1], height = s.input_shape[2], width = s.input_shape[3];
    if (in.prescaled) {
        if (in.layout != RUNTIME_LAYOUT_CHW || in.channels != channels) {
            fail(RUNTIME_ERR_INVALID_INPUT, "a prescaled input must be the graph's tensor: CHW with " +
                                                std::to_string(channels) + " channels, got " +
                                                std::to_string(in.channels) +
                                                (in.layout == RUNTIME_LAYOUT_CHW ? " CHW" : " HWC"));
        }
        runtime::detail::Preprocess exact = s.preprocess;
        exact.accepted_channels = {channels};
        runtime::detail::check_input(in, exact, channels, height, width);
    } else {
        runtime::detail::check_input(in, s.preprocess, channels, height, width);
    }
    const std::size_t plane = std::size_t(height) * std::size_t(width);
    const std::size_t batch = std::size_t(in.batch);
    out.heatmap_needed = batch * plane;
    out.raw_needed = batch * std::size_t(s.output_shape[1]) * plane;
    if (out.heatmap != nullptr && !s.has_heatmap) {
        fail(RUNTIME_ERR_INVALID_ARGUMENT, "the " + s.layer + " graph " + s.graph_file +
                                               " emits logits, not a heatmap; ask for the raw output");
    }
    if (out.heatmap == nullptr && out.raw == nullptr) {
        fail(RUNTIME_ERR_BUFFER_TOO_SMALL, "no output buffer given; the heatmap needs " +
                                               std::to_string(out.heatmap_needed) + " floats, the raw output " +
                                               std::to_string(out.raw_needed));
    }
    if (out.heatmap != nullptr && out.heatmap_capacity < out.heatmap_needed) {
        fail(RUNTIME_ERR_BUFFER_TOO_SMALL, "heatmap buffer holds " + std::to_string(out.heatmap_capacity) +
                                               " floats; " + std::to_string(out.heatmap_needed) + " needed");
    }
    if (out.raw != nullptr && out.raw_capacity < out.raw_needed) {
        fail(RUNTIME_ERR_BUFFER_TOO_SMALL, "raw buffer holds " + std::to_string(out.raw_capacity) + " floats; " +
                                               std::to_string(out.raw_needed) + " needed");
    }

    thread_local std::vector<float> input_scratch, output_scratch;
    const float* tensor = in.data;
    if (!in.prescaled) {
        float* scaled = scratch(input_scratch, batch * std::size_t(channels) * plane);
        runtime::detail::preprocess(in, s.preprocess, channels, height, width, scaled);
        tensor = scaled;
    }
    float* raw = out.raw != nullptr ? out.raw : scratch(output_scratch, out.raw_needed);
    std::vector<int64_t> in_shape = s.input_shape, out_shape = s.output_shape;
    in_shape[0] = out_shape[0] = in.batch;
    s.engine->run(tensor, in_shape, raw, out_shape);
    if (out.heatmap != nullptr) {
        const std::size_t stride = std::size_t(s.output_shape[1]) * plane;
        const std::size_t offset = std::size_t(s.postprocess.channel) * plane;
        for (std::size_t b = 0; b < batch; ++b) {
            std::copy_n(raw + b * stride + offset, plane, out.heatmap + b * plane);
        }
    }
}

runtime_status shape_query(const runtime_session* session, int64_t* dims, size_t capacity, size_t* rank,
                           bool input) {
    return guarded([&] {
        require(session, "session");
        require(rank, "rank");
        const std::vector<int64_t>& shape = input ? session->input_shape : session->output_shape;
        *rank = shape.size();
        if (capacity < shape.size()) {
            fail(RUNTIME_ERR_BUFFER_TOO_SMALL,
                 "dims holds " + std::to_string(capacity) + " entries; rank is " + std::to_string(shape.size()));
        }
        require(dims, "dims");
        std::copy(shape.begin(), shape.end(), dims);
    });
}

}  // namespace

extern "C" {

const char* runtime_version(void) { return RUNTIME_VERSION_STRING; }

int runtime_abi_version(void) { return RUNTIME_ABI_VERSION; }

const char* runtime_onnxruntime_version(void) {
    const char* version = nullptr;
    guarded([&] { version = runtime::detail::onnxruntime_version(); });
    return version;
}

int runtime_has_backend(runtime_backend backend) {
    switch (backend) {
        case RUNTIME_BACKEND_AUTO:
        case RUNTIME_BACKEND_ONNXRUNTIME: return 1;
        case RUNTIME_BACKEND_OPENVINO: {
            bool available = false;
            guarded([&] { available = runtime::detail::openvino_available(); });
            return available ? 1 : 0;
        }
    }
    return 0;
}

const char* runtime_status_string(runtime_status status) {
    switch (status) {
        case RUNTIME_OK: return "RUNTIME_OK";
        case RUNTIME_ERR_INVALID_ARGUMENT: return "RUNTIME_ERR_INVALID_ARGUMENT";
        case RUNTIME_ERR_INVALID_INPUT: return "RUNTIME_ERR_INVALID_INPUT";
        case RUNTIME_ERR_BUFFER_TOO_SMALL: return "RUNTIME_ERR_BUFFER_TOO_SMALL";
        case RUNTIME_ERR_MODEL_LOAD: return "RUNTIME_ERR_MODEL_LOAD";
        case RUNTIME_ERR_BACKEND: return "RUNTIME_ERR_BACKEND";
        case RUNTIME_ERR_UNSUPPORTED: return "RUNTIME_ERR_UNSUPPORTED";
        case RUNTIME_ERR_INTERNAL: return "RUNTIME_ERR_INTERNAL";
    }
    return "RUNTIME_ERR_UNKNOWN";
}

const char* runtime_last_error(void) { return last_error.c_str(); }

void runtime_session_options_init(runtime_session_options* options) {
    if (options == nullptr) return;
    std::memset(static_cast<void*>(options), 0, sizeof(*options));
    options->struct_size = sizeof(*options);
    options->backend = RUNTIME_BACKEND_AUTO;
    options->device = RUNTIME_DEVICE_CPU;
    options->precision = RUNTIME_PRECISION_DEFAULT;
    options->layer = RUNTIME_LAYER_DEFAULT;
    options->intra_op_threads = 0;
    options->verify_sha256 = 1;
    options->allow_spinning = 1;
}

void runtime_input_init(runtime_input* input) {
    if (input == nullptr) return;
    std::memset(static_cast<void*>(input), 0, sizeof(*input));
    input->struct_size = sizeof(*input);
    input->batch = 1;
    input->layout = RUNTIME_LAYOUT_CHW;
}

void runtime_output_init(runtime_output* output) {
    if (output == nullptr) return;
    std::memset(static_cast<void*>(output), 0, sizeof(*output));
    output->struct_size = sizeof(*output);
}

// The caller's options, completed with defaults for fields its (older, smaller) struct lacks.
static runtime_session_options resolved_options(const runtime_session_options* options) {
    runtime_session_options defaults;
    runtime_session_options_init(&defaults);
    if (options == nullptr) return defaults;
    return sized_copy(options, defaults, "runtime_session_options",
                      offsetof(runtime_session_options, verify_sha256) + sizeof(int32_t));
}

runtime_status runtime_session_create(const char* path, const runtime_session_options* options,
                                      runtime_session** out) {
    if (out != nullptr) *out = nullptr;
    return guarded([&] {
        require(out, "out");
        require(path, "path");
        const runtime_session_options opts = resolved_options(options);
        *out = load(path, opts).release();
    });
}

runtime_status runtime_session_create_from_memory(const void* model, size_t size, const char* name,
                                                  const runtime_session_options* options, runtime_session** out) {
    if (out != nullptr) *out = nullptr;
    return guarded([&] {
        require(out, "out");
        require(model, "model");
        if (size == 0) fail(RUNTIME_ERR_MODEL_LOAD, "the model is empty (size 0)");
        const runtime_session_options opts = resolved_options(options);
        check_options(opts);
        const std::string source = name != nullptr ? name : "<memory>";
        const char* bytes = static_cast<const char*>(model);
        const std::vector<char> copy(bytes, bytes + size);
        Manifest manifest;
        GraphEntry entry;
        read_embedded(copy, source, opts, manifest, entry);
        *out = make_session(manifest, entry, copy, source, opts).release();
    });
}

void runtime_session_destroy(runtime_session* session) { delete session; }

runtime_status runtime_session_get_info(const runtime_session* session, runtime_session_info* info) {
    return guarded([&] {
        require(session, "session");
        require(info, "info");
        constexpr std::size_t v1 = offsetof(runtime_session_info, threshold) + sizeof(float);
        if (info->struct_size < v1) {
            fail(RUNTIME_ERR_INVALID_ARGUMENT, "info->struct_size is " + std::to_string(info->struct_size) +
                                                   "; set it to sizeof(runtime_session_info)");
        }
        runtime_session_info full{};
        full.struct_size = std::min(info->struct_size, sizeof(full));
        full.family = session->family.c_str();
        full.graph_file = session->graph_file.c_str();
        full.layer = session->layer.c_str();
        full.precision = session->precision.c_str();
        full.input_name = session->input_name.c_str();
        full.output_name = session->output_name.c_str();
        full.backend = session->backend;
        full.device = session->device;
        full.input_channels = session->input_shape[1];
        full.output_channels = session->output_shape[1];
        full.height = session->input_shape[2];
        full.width = session->input_shape[3];
        full.has_heatmap = session->has_heatmap ? 1 : 0;
        full.heatmap_channel = int32_t(session->postprocess.channel);
        full.threshold = float(session->postprocess.threshold);
        std::memcpy(static_cast<void*>(info), &full, full.struct_size);
    });
}

runtime_status runtime_session_input_shape(const runtime_session* session, int64_t* dims, size_t capacity,
                                           size_t* rank) {
    return shape_query(session, dims, capacity, rank, true);
}

runtime_status runtime_session_output_shape(const runtime_session* session, int64_t* dims, size_t capacity,
                                            size_t* rank) {
    return shape_query(session, dims, capacity, rank, false);
}

runtime_status runtime_session_run(runtime_session* session, const runtime_input* input, runtime_output* output) {
    return guarded([&] {
        require(session, "session");
        require(input, "input");
        require(output, "output");
        runtime_input in_defaults;
        runtime_input_init(&in_defaults);
        const runtime_input in =
            sized_copy(input, in_defaults, "runtime_input", offsetof(runtime_input, layout) + sizeof(int32_t));
        if (output->struct_size < offsetof(runtime_output, raw_needed) + sizeof(size_t)) {
            fail(RUNTIME_ERR_INVALID_ARGUMENT, "runtime_output->struct_size is " +
                                                   std::to_string(output->struct_size) +
                                                   "; initialise it with runtime_output_init()");
        }
        run(*session, in, *output);
    });
}

}  // extern "C"
