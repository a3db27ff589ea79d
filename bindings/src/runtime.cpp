// The C entry points of libruntime and the session they drive.
//
// Each entry point runs its body inside guarded(): the body may throw, the
// caller only ever sees a status and the per-thread message (ONNX Runtime's
// API_IMPL_BEGIN/END pattern).
#include <sys/stat.h>


#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

#include "internal.hpp"

using runtime::detail::Backend;
using runtime::detail::Error;
using runtime::detail::fail;
using runtime::detail::GraphEntry;
using runtime::detail::KeypointsPost;
using runtime::detail::Manifest;
using runtime::detail::TensorRef;
using runtime::detail::TensorSpec;

struct runtime_session {
    std::string family;
    std::string variant;
    std::string graph_file;
    std::string layer;
    std::string precision;
    std::string kind;  // postprocess kind
    int32_t backend = RUNTIME_BACKEND_ONNXRUNTIME;
    int32_t device = RUNTIME_DEVICE_CPU;
    runtime::detail::Preprocess preprocess;
    runtime::detail::Postprocess postprocess;
    std::vector<TensorSpec> inputs;   // the graph's, in the manifest's order; inputs[0] is the image
    std::vector<TensorSpec> outputs;
    runtime::detail::ImageGeometry image;
    bool has_heatmap = false;  // kind heatmap, not the base layer
    std::size_t heatmap_output = 0;
    // Kind keypoints: has_keypoints when runtime_session_run_keypoints can answer,
    // otherwise keypoints_problem says why (for its error).
    bool has_keypoints = false;
    std::string keypoints_problem;
    std::size_t points_output = 0, scores_output = 0, angle_output = 0;
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
    // The engines start every thread at load: ONNX Runtime never finished loading with 20000
    // (as runtime.SessionOptions, at most 1024).
    constexpr int32_t kMaxThreads = 1024;
    if (options.intra_op_threads < 0 || options.intra_op_threads > kMaxThreads) {
        fail(RUNTIME_ERR_INVALID_ARGUMENT, "options->intra_op_threads is " + std::to_string(options.intra_op_threads) +
                                               "; expected 0.." + std::to_string(kMaxThreads));
    }
}

std::unique_ptr<runtime_session> make_session(const Manifest& manifest, const GraphEntry& entry,
                                              const std::vector<char>& model, const std::string& graph_path,
                                              const runtime_session_options& options);

std::size_t output_index(const GraphEntry& entry, const std::string& name) {
    for (std::size_t i = 0; i < entry.outputs.size(); ++i) {
        if (entry.outputs[i].name == name) return i;
    }
    return entry.outputs.size();
}

// Whether runtime_session_run_keypoints can decode this graph's outputs: the
// indices of its outputs in s, or the reason it cannot ("" when it can).
std::string find_keypoints(const KeypointsPost& post, const GraphEntry& entry, runtime_session& s) {
    const std::string use_run = "; use runtime_session_run for its outputs";
    if (entry.layer != "full") {
        return "the " + entry.layer + " graph " + entry.file +
               " emits the network's raw outputs, not decoded points; runtime_session_run_keypoints needs the "
               "full graph (layer full), which decodes them" + use_run;
    }
    const int64_t count = int64_t(post.points.size());
    if (count > RUNTIME_MAX_KEYPOINTS) {
        return "the graph " + entry.file + " locates " + std::to_string(count) +
               " points; runtime_keypoints holds at most " + std::to_string(RUNTIME_MAX_KEYPOINTS) +
               " (RUNTIME_MAX_KEYPOINTS)" + use_run;
    }
    if (post.scores_output == post.points_output || post.angle_output == post.points_output ||
        post.angle_output == post.scores_output) {
        return "postprocess names the outputs points '" + post.points_output + "', scores '" + post.scores_output +
               "'" + (post.angle_output.empty() ? "" : " and angle '" + post.angle_output + "'") +
               "; expected a distinct output for each";
    }
    s.points_output = output_index(entry, post.points_output);
    s.scores_output = output_index(entry, post.scores_output);
    s.angle_output = post.angle_output.empty() ? entry.outputs.size() : output_index(entry, post.angle_output);
    // The manifest parser has checked that a full graph has these outputs, in the
    // shapes runtime/_manifest.py requires: (N, K, 2), (N, K) and (N,) or (N, 1).
    return "";
}

// manifest.json is UTF-8; a leading byte order mark (some Windows editors add
// one) is dropped, as runtime/_manifest.py does.
std::string without_bom(const std::vector<char>& bytes) {
    static const char kBom[] = "\xEF\xBB\xBF";
    const bool bom = bytes.size() >= 3 && std::memcmp(bytes.data(), kBom, 3) == 0;
    return std::string(bytes.begin() + (bom ? 3 : 0), bytes.end());
}

std::string size_mismatch(const std::string& graph_path, int64_t actual, int64_t declared) {
    return "graph " + graph_path + " does not match its manifest: " + std::to_string(actual) + " bytes, expected " +
           std::to_string(declared) + " (truncated, modified or from another export)";
}

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
        if (::lstat(manifest_path.c_str(), &m) != 0) {
            fail(RUNTIME_ERR_MODEL_LOAD, "no manifest.json in " + path + "; is it an export bundle?");
        }
        // read_file refuses what is not a regular file (a FIFO, /dev/zero) with its own message.
        const std::string text = without_bom(runtime::detail::read_file(manifest_path, "manifest"));
        manifest = runtime::detail::parse_manifest(text, manifest_path, false);
        entry = select_graph(manifest, options, path);
        graph_path = path + "/" + entry.file;
        struct stat g {};
        if (::lstat(graph_path.c_str(), &g) != 0) {
            fail(RUNTIME_ERR_MODEL_LOAD, "graph " + graph_path + " listed in the manifest is missing");
        }
        // The declared size is checked before the file is read (a wrong file costs nothing),
        // and again on the bytes read (the file may change in between).
        const int64_t declared = entry.bytes;
        if (S_ISREG(g.st_mode) && g.st_size != declared) {
            fail(RUNTIME_ERR_MODEL_LOAD, size_mismatch(graph_path, g.st_size, declared));
        }
        model = runtime::detail::read_file(graph_path, "graph");
        if (static_cast<int64_t>(model.size()) != declared) {
            fail(RUNTIME_ERR_MODEL_LOAD, size_mismatch(graph_path, static_cast<int64_t>(model.size()), declared));
        }
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
    runtime::detail::check_runnable(manifest, entry, graph_path);
    auto session = std::make_unique<runtime_session>();
    session->family = manifest.family;
    session->variant = manifest.variant;
    session->graph_file = entry.file;
    session->layer = entry.layer;
    session->precision = entry.precision;
    session->kind = runtime::detail::kind_name(manifest.postprocess);
    session->preprocess = manifest.preprocess;
    session->postprocess = manifest.postprocess;
    session->inputs = entry.inputs;
    session->outputs = entry.outputs;
    const TensorSpec& image = entry.inputs[0];
    session->image = {image.shape[1], image.shape[2], image.shape[3], image.shape[0]};
    // The base layer emits the bare network's outputs (logits): no heatmap.
    if (const auto* heat = std::get_if<runtime::detail::HeatmapPost>(&manifest.postprocess)) {
        for (std::size_t i = 0; i < entry.outputs.size(); ++i) {
            const TensorSpec& out = entry.outputs[i];
            if (entry.layer != "base" && out.name == heat->output && out.shape.size() == 4 &&
                heat->channel < out.shape[1]) {
                session->has_heatmap = true;
                session->heatmap_output = i;
            }
        }
    }
    if (const auto* kp = std::get_if<KeypointsPost>(&manifest.postprocess)) {
        session->keypoints_problem = find_keypoints(*kp, entry, *session);
        session->has_keypoints = session->keypoints_problem.empty();
    }
    session->device = options.device;

    runtime::detail::LoadRequest request;
    request.model = &model;
    request.path = graph_path;
    request.inputs = entry.inputs;
    request.outputs = entry.outputs;
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

// A tensor's shape for a batch: the batch axis set when it is dynamic.
std::vector<int64_t> batch_shape(const TensorSpec& spec, int64_t batch) {
    std::vector<int64_t> shape = spec.shape;
    if (shape[0] < 0) shape[0] = batch;
    return shape;
}

std::size_t element_count(const std::vector<int64_t>& shape) {
    std::size_t n = 1;
    for (int64_t d : shape) n *= std::size_t(d);
    return n;
}

runtime_input resolved_input(const runtime_input* input) {
    require(input, "input");
    runtime_input defaults;
    runtime_input_init(&defaults);
    const runtime_input in =
        sized_copy(input, defaults, "runtime_input", offsetof(runtime_input, layout) + sizeof(int32_t));
    require(in.data, "input->data");
    return in;
}

// The graph's image input for a checked batch: the caller's data when
// prescaled, otherwise pre-processed into this thread's scratch.
TensorRef image_tensor(const runtime_session& s, const runtime_input& in, const runtime_transform& transform) {
    TensorRef tensor{s.inputs[0].name.c_str(), const_cast<float*>(in.data), batch_shape(s.inputs[0], in.batch)};
    if (!in.prescaled) {
        thread_local std::vector<float> input_scratch;
        tensor.data = scratch(input_scratch, element_count(tensor.shape));
        runtime::detail::preprocess(in, s.preprocess, s.image, transform, tensor.data);
    }
    return tensor;
}

void run(runtime_session& s, const runtime_input& in, runtime_outputs& out) {
    if (out.count != s.outputs.size()) {
        fail(RUNTIME_ERR_INVALID_ARGUMENT, "outputs->count is " + std::to_string(out.count) + "; the graph " +
                                               s.graph_file + " has " + std::to_string(s.outputs.size()) + " outputs");
    }
    require(out.tensors, "outputs->tensors");
    out.transform = runtime::detail::check_input(in, s.preprocess, s.image);
    std::vector<TensorRef> fetch;
    std::string sizes, small;
    for (std::size_t i = 0; i < s.outputs.size(); ++i) {
        runtime_tensor_buffer& buffer = out.tensors[i];
        std::vector<int64_t> shape = batch_shape(s.outputs[i], in.batch);
        buffer.needed = element_count(shape);
        const std::string name = "'" + s.outputs[i].name + "'";
        sizes += (sizes.empty() ? "" : ", ") + name + " " + std::to_string(buffer.needed);
        if (buffer.data == nullptr) continue;
        if (buffer.capacity < buffer.needed) {
            small += (small.empty() ? "" : "; ") + name + " buffer holds " + std::to_string(buffer.capacity) +
                     " floats, " + std::to_string(buffer.needed) + " needed";
        }
        fetch.push_back(TensorRef{s.outputs[i].name.c_str(), buffer.data, std::move(shape)});
    }
    if (!small.empty()) fail(RUNTIME_ERR_BUFFER_TOO_SMALL, small);
    if (fetch.empty()) {
        fail(RUNTIME_ERR_BUFFER_TOO_SMALL, "no output buffer given (every data is NULL); floats needed: " + sizes);
    }
    s.engine->run({image_tensor(s, in, out.transform)}, fetch);
}

void run_heatmap(runtime_session& s, const runtime_input& in, float* heatmap, std::size_t capacity,
                 std::size_t& needed, runtime_transform& transform) {
    if (!s.has_heatmap) {
        if (s.kind != "heatmap") {
            fail(RUNTIME_ERR_INVALID_ARGUMENT, "the graph " + s.graph_file + " of family '" + s.family +
                                                   "' has postprocess kind '" + s.kind +
                                                   "', not heatmap; use runtime_session_run for its outputs");
        }
        fail(RUNTIME_ERR_INVALID_ARGUMENT, "the " + s.layer + " graph " + s.graph_file +
                                               " emits the bare network's outputs (logits), not a heatmap; "
                                               "use runtime_session_run for them");
    }
    const auto& post = std::get<runtime::detail::HeatmapPost>(s.postprocess);
    transform = runtime::detail::check_input(in, s.preprocess, s.image);
    const TensorSpec& spec = s.outputs[s.heatmap_output];
    const std::vector<int64_t> shape = batch_shape(spec, in.batch);  // (N, C, H, W)
    const std::size_t plane = std::size_t(shape[2]) * std::size_t(shape[3]);
    needed = std::size_t(shape[0]) * plane;
    if (heatmap == nullptr) {
        fail(RUNTIME_ERR_BUFFER_TOO_SMALL, "no heatmap buffer given; " + std::to_string(needed) + " floats needed");
    }
    if (capacity < needed) {
        fail(RUNTIME_ERR_BUFFER_TOO_SMALL, "heatmap buffer holds " + std::to_string(capacity) + " floats; " +
                                               std::to_string(needed) + " needed");
    }
    thread_local std::vector<float> output_scratch;
    float* raw = scratch(output_scratch, element_count(shape));
    s.engine->run({image_tensor(s, in, transform)}, {TensorRef{spec.name.c_str(), raw, shape}});
    const float low = float(post.low), high = float(post.high);
    const std::size_t stride = std::size_t(shape[1]) * plane;
    for (std::size_t b = 0; b < std::size_t(shape[0]); ++b) {
        const float* src = raw + b * stride + std::size_t(post.channel) * plane;
        std::transform(src, src + plane, heatmap + b * plane, [&](float v) { return std::clamp(v, low, high); });
    }
}

// input = source * scale + pad, undone (runtime/_letterbox.py Transform.to_source).
void map_point(const runtime_transform& t, double& x, double& y) {
    x = (x - double(t.pad_x)) / t.scale_x;
    y = (y - double(t.pad_y)) / t.scale_y;
}

void run_keypoints(runtime_session& s, const runtime_input& in, runtime_keypoints* keypoints, std::size_t capacity,
                   std::size_t& needed) {
    if (s.kind != "keypoints") {
        fail(RUNTIME_ERR_INVALID_ARGUMENT, "the graph " + s.graph_file + " of family '" + s.family +
                                               "' has postprocess kind '" + s.kind +
                                               "', not keypoints; use runtime_session_run" +
                                               (s.kind == "heatmap" ? "_heatmap or runtime_session_run" : "") +
                                               " for its outputs");
    }
    if (!s.has_keypoints) fail(RUNTIME_ERR_INVALID_ARGUMENT, s.keypoints_problem);
    const auto& post = std::get<KeypointsPost>(s.postprocess);
    const runtime_transform transform = runtime::detail::check_input(in, s.preprocess, s.image);
    needed = std::size_t(in.batch);
    if (keypoints == nullptr) {
        fail(RUNTIME_ERR_BUFFER_TOO_SMALL,
             "no keypoints buffer given; " + std::to_string(needed) + " runtime_keypoints needed (one per image)");
    }
    if (capacity < needed) {
        fail(RUNTIME_ERR_BUFFER_TOO_SMALL, "keypoints buffer holds " + std::to_string(capacity) +
                                               " runtime_keypoints; " + std::to_string(needed) +
                                               " needed (one per image)");
    }
    const bool has_angle = !post.angle_output.empty();
    std::vector<std::size_t> wanted = {s.points_output, s.scores_output};
    if (has_angle) wanted.push_back(s.angle_output);
    std::vector<std::vector<int64_t>> shapes;
    std::size_t total = 0;
    for (std::size_t index : wanted) {
        shapes.push_back(batch_shape(s.outputs[index], in.batch));
        total += element_count(shapes.back());
    }
    thread_local std::vector<float> output_scratch;
    float* raw = scratch(output_scratch, total);
    std::vector<TensorRef> fetch;
    for (std::size_t i = 0; i < wanted.size(); ++i) {
        fetch.push_back(TensorRef{s.outputs[wanted[i]].name.c_str(), raw, shapes[i]});
        raw += element_count(shapes[i]);
    }
    s.engine->run({image_tensor(s, in, transform)}, fetch);

    // As the Python runtime decodes: a non-finite value is a broken graph, never a
    // result; checked for the whole batch before anything is written.
    for (const TensorRef& tensor : fetch) {
        const std::size_t per_image = element_count(tensor.shape) / needed;
        std::vector<std::size_t> bad;
        for (std::size_t b = 0; b < needed; ++b) {
            const float* values = tensor.data + b * per_image;
            if (!std::all_of(values, values + per_image, [](float v) { return std::isfinite(v); })) bad.push_back(b);
        }
        if (bad.empty()) continue;
        std::string which = needed == 1 ? "the image" : bad.size() == 1 ? "image " : "images ";
        for (std::size_t i = 0; needed > 1 && i < bad.size(); ++i) which += (i ? ", " : "") + std::to_string(bad[i]);
        fail(RUNTIME_ERR_BACKEND, std::string("the graph returned non-finite '") + tensor.name + "' for " + which +
                                      (needed > 1 ? " of the batch" : "") +
                                      "; expected finite values (a broken or wrongly quantized graph)");
    }
    const std::size_t count = post.points.size();
    const float* points = fetch[0].data;
    const float* scores = fetch[1].data;
    for (std::size_t b = 0; b < needed; ++b) {
        runtime_keypoints value{};
        value.count = count;
        for (std::size_t k = 0; k < count; ++k) {
            value.x[k] = double(points[(b * count + k) * 2]);
            value.y[k] = double(points[(b * count + k) * 2 + 1]);
            map_point(transform, value.x[k], value.y[k]);
            value.score[k] = double(scores[b * count + k]);
        }
        if (has_angle) {
            value.has_angle = 1;
            value.angle = double(fetch[2].data[b]);
        }
        value.transform = transform;
        keypoints[b] = value;
    }
}

int32_t dtype_code(const std::string& dtype) {
    if (dtype == "float16") return RUNTIME_DTYPE_FLOAT16;
    if (dtype == "uint8") return RUNTIME_DTYPE_UINT8;
    if (dtype == "int8") return RUNTIME_DTYPE_INT8;
    if (dtype == "int64") return RUNTIME_DTYPE_INT64;
    return RUNTIME_DTYPE_FLOAT32;
}

// Copies a filled struct into the caller's, no further than its struct_size.
// A caller's struct from an older, shorter header gets the fields it has.
template <class T>
void give(T* destination, T& value, const char* name) {
    if (destination->struct_size < sizeof(std::size_t) + sizeof(void*)) {
        fail(RUNTIME_ERR_INVALID_ARGUMENT, std::string(name) + "->struct_size is " +
                                               std::to_string(destination->struct_size) + "; initialise it with " +
                                               name + "_init()");
    }
    value.struct_size = std::min(destination->struct_size, sizeof(T));
    std::memcpy(static_cast<void*>(destination), &value, value.struct_size);
}

runtime_status tensor_info(const runtime_session* session, std::size_t index, runtime_tensor_info* info,
                           bool input) {
    return guarded([&] {
        require(session, "session");
        require(info, "info");
        const std::vector<TensorSpec>& tensors = input ? session->inputs : session->outputs;
        if (index >= tensors.size()) {
            fail(RUNTIME_ERR_INVALID_ARGUMENT, std::string(input ? "input" : "output") + " index " +
                                                   std::to_string(index) + " is out of range; the graph has " +
                                                   std::to_string(tensors.size()));
        }
        const TensorSpec& spec = tensors[index];
        runtime_tensor_info value{};
        value.name = spec.name.c_str();
        value.role = spec.role.c_str();
        value.dtype = dtype_code(spec.dtype);
        value.rank = int32_t(spec.shape.size());
        std::copy(spec.shape.begin(), spec.shape.end(), value.dims);
        give(info, value, "runtime_tensor_info");
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

void runtime_outputs_init(runtime_outputs* outputs) {
    if (outputs == nullptr) return;
    std::memset(static_cast<void*>(outputs), 0, sizeof(*outputs));
    outputs->struct_size = sizeof(*outputs);
}

void runtime_tensor_info_init(runtime_tensor_info* info) {
    if (info == nullptr) return;
    std::memset(static_cast<void*>(info), 0, sizeof(*info));
    info->struct_size = sizeof(*info);
}

void runtime_session_info_init(runtime_session_info* info) {
    if (info == nullptr) return;
    std::memset(static_cast<void*>(info), 0, sizeof(*info));
    info->struct_size = sizeof(*info);
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
        runtime_session_info value{};
        value.family = session->family.c_str();
        value.variant = session->variant.c_str();
        value.graph_file = session->graph_file.c_str();
        value.layer = session->layer.c_str();
        value.precision = session->precision.c_str();
        value.postprocess = session->kind.c_str();
        value.backend = session->backend;
        value.device = session->device;
        value.input_count = session->inputs.size();
        value.output_count = session->outputs.size();
        value.channels = session->image.channels;
        value.height = session->image.height;
        value.width = session->image.width;
        value.resize = session->preprocess.resize == runtime::detail::Resize::letterbox ? RUNTIME_RESIZE_LETTERBOX
                                                                                          : RUNTIME_RESIZE_EXACT;
        value.has_heatmap = session->has_heatmap ? 1 : 0;
        value.source_low = session->preprocess.source_low;
        value.source_high = session->preprocess.source_high;
        value.min_size = session->preprocess.min_size;
        if (const auto* heat = std::get_if<runtime::detail::HeatmapPost>(&session->postprocess)) {
            value.heatmap_output = session->heatmap_output;
            value.heatmap_channel = heat->channel;
            value.heatmap_threshold = heat->threshold;
        }
        value.has_keypoints = session->has_keypoints ? 1 : 0;
        if (const auto* kp = std::get_if<KeypointsPost>(&session->postprocess)) {
            value.keypoint_count = kp->points.size();
            value.keypoint_threshold = kp->score_threshold;
        }
        give(info, value, "runtime_session_info");
    });
}

runtime_status runtime_session_input_count(const runtime_session* session, size_t* count) {
    return guarded([&] {
        require(session, "session");
        require(count, "count");
        *count = session->inputs.size();
    });
}

runtime_status runtime_session_output_count(const runtime_session* session, size_t* count) {
    return guarded([&] {
        require(session, "session");
        require(count, "count");
        *count = session->outputs.size();
    });
}

runtime_status runtime_session_input_info(const runtime_session* session, size_t index, runtime_tensor_info* info) {
    return tensor_info(session, index, info, true);
}

runtime_status runtime_session_output_info(const runtime_session* session, size_t index, runtime_tensor_info* info) {
    return tensor_info(session, index, info, false);
}

runtime_status runtime_session_find_output(const runtime_session* session, const char* name, size_t* index) {
    return guarded([&] {
        require(session, "session");
        require(name, "name");
        require(index, "index");
        std::string names;
        for (std::size_t i = 0; i < session->outputs.size(); ++i) {
            if (session->outputs[i].name == name) {
                *index = i;
                return;
            }
            names += (names.empty() ? "'" : ", '") + session->outputs[i].name + "'";
        }
        fail(RUNTIME_ERR_INVALID_ARGUMENT, "the graph " + session->graph_file + " has no output '" + name +
                                               "'; it has [" + names + "]");
    });
}

runtime_status runtime_session_run(runtime_session* session, const runtime_input* input, runtime_outputs* outputs) {
    return guarded([&] {
        require(session, "session");
        const runtime_input in = resolved_input(input);
        require(outputs, "outputs");
        if (outputs->struct_size < offsetof(runtime_outputs, transform) + sizeof(runtime_transform)) {
            fail(RUNTIME_ERR_INVALID_ARGUMENT, "runtime_outputs->struct_size is " +
                                                   std::to_string(outputs->struct_size) +
                                                   "; initialise it with runtime_outputs_init()");
        }
        run(*session, in, *outputs);
    });
}

runtime_status runtime_session_run_heatmap(runtime_session* session, const runtime_input* input, float* heatmap,
                                           size_t capacity, size_t* needed, runtime_transform* transform) {
    return guarded([&] {
        require(session, "session");
        const runtime_input in = resolved_input(input);
        require(needed, "needed");
        runtime_transform ignored{};
        run_heatmap(*session, in, heatmap, capacity, *needed, transform != nullptr ? *transform : ignored);
    });
}

runtime_status runtime_session_run_keypoints(runtime_session* session, const runtime_input* input,
                                             runtime_keypoints* keypoints, size_t capacity, size_t* needed) {
    return guarded([&] {
        require(session, "session");
        const runtime_input in = resolved_input(input);
        require(needed, "needed");
        run_keypoints(*session, in, keypoints, capacity, *needed);
    });
}

runtime_status runtime_session_keypoint_name(const runtime_session* session, size_t index, const char** name) {
    return guarded([&] {
        require(session, "session");
        require(name, "name");
        const auto* kp = std::get_if<KeypointsPost>(&session->postprocess);
        if (kp == nullptr) {
            fail(RUNTIME_ERR_INVALID_ARGUMENT, "the graph " + session->graph_file + " of family '" + session->family +
                                                   "' has postprocess kind '" + session->kind +
                                                   "', not keypoints: it names no points");
        }
        if (index >= kp->points.size()) {
            fail(RUNTIME_ERR_INVALID_ARGUMENT, "keypoint index " + std::to_string(index) +
                                                   " is out of range; the model has " +
                                                   std::to_string(kp->points.size()) + " points");
        }
        *name = kp->points[index].c_str();
    });
}

runtime_status runtime_session_color_order(const runtime_session* session, int32_t* order) {
    return guarded([&] {
        require(session, "session");
        require(order, "order");
        *order = session->preprocess.color_order == runtime::detail::ColorOrder::bgr ? RUNTIME_COLOR_ORDER_BGR
                                                                                     : RUNTIME_COLOR_ORDER_RGB;
    });
}

runtime_status runtime_map_to_source(const runtime_transform* transform, double* xy, size_t count) {
    return guarded([&] {
        require(transform, "transform");
        // Infinite scales are refused too: they mapped every point to 0.
        const auto valid = [](double scale) { return scale > 0.0 && std::isfinite(scale); };
        if (!valid(transform->scale_x) || !valid(transform->scale_y)) {
            fail(RUNTIME_ERR_INVALID_ARGUMENT, "transform scale " + std::to_string(transform->scale_x) + " x " +
                                                   std::to_string(transform->scale_y) +
                                                   " is not positive and finite; was it filled by a run?");
        }
        if (count == 0) return;
        require(xy, "xy");
        for (std::size_t i = 0; i < count; ++i) map_point(*transform, xy[2 * i], xy[2 * i + 1]);
    });
}

}  // extern "C"
