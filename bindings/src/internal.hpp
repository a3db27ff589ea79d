// Internal declarations of libruntime: never installed, never seen by hosts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "runtime/runtime.h"

namespace runtime::detail {

// Every failure inside the library is an Error carrying the status the C API
// returns; the entry points in runtime.cpp turn it into status + last error.
class __attribute__((visibility("default"))) Error : public std::runtime_error {
public:
    Error(runtime_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
    runtime_status status() const noexcept { return status_; }

private:
    runtime_status status_;
};

[[noreturn]] inline void fail(runtime_status status, const std::string& message) { throw Error(status, message); }

// ---- manifest.cpp: schema version 2, the rules of runtime/_manifest.py -------

struct TensorSpec {
    std::string name;
    std::vector<int64_t> shape;  // -1 for a named (dynamic) axis
    std::string dtype;           // "float32", "float16", "uint8", "int8", "int64"
    std::string role;            // "image", "heatmap", "logits", "points", ...
};

struct GraphEntry {
    std::string file;
    std::string layer;      // "base", "patch", "full"
    std::string precision;  // "fp32", "fp16", "int8"
    std::string mode;
    std::string sha256;     // empty for the entry embedded in a lone graph
    int64_t bytes = 0;      // the file's size; 0 for the entry embedded in a lone graph
    int64_t opset = 0;
    std::vector<TensorSpec> inputs;
    std::vector<TensorSpec> outputs;

    const TensorSpec* find_output(const std::string& name) const;
    const TensorSpec* image_input() const;  // the input with role "image", or null
};

enum class Resize { exact, letterbox };

// preprocess.color_order: which PNG/JPEG colour plane a host puts in channel 0
// (libruntime itself decodes no files; it is reported, never applied).
enum class ColorOrder { rgb, bgr };

struct Preprocess {
    Resize resize = Resize::exact;
    double pad_value = 0.0;  // letterbox: padding, in the source range
    int64_t height = 0;      // the full-image graph's input size
    int64_t width = 0;
    std::vector<int64_t> read_channels;  // source channels fed, in order
    std::vector<std::string> channel_names;
    bool append_mask = false;  // a validity channel after the read ones
    std::vector<int64_t> accepted_channels;
    std::vector<std::string> accepted_layouts;  // "CHW", "HWC"
    double source_low = 0.0;
    double source_high = 0.0;
    double scale = 1.0;
    int64_t min_size = 1;  // the fewest pixels a source image may have on each side
    ColorOrder color_order = ColorOrder::rgb;  // optional in the manifest, default "rgb"

    // Channels of the graph's image input.
    int64_t channels() const { return int64_t(read_channels.size()) + (append_mask ? 1 : 0); }
};

struct HeatmapPost {
    std::string output;
    int64_t channel = 0;
    double low = 0.0, high = 1.0;  // the runtime clips to this range
    double threshold = 0.5;
    std::vector<int64_t> zero_channels;
};

struct KeypointsPost {
    std::vector<std::string> points;
    std::string points_output;
    std::string scores_output;
    std::string angle_output;  // empty when absent
    double score_threshold = 0.0;
};

using Postprocess = std::variant<HeatmapPost, KeypointsPost>;
const char* kind_name(const Postprocess& post);

struct Manifest {
    std::string family;
    std::string variant;
    Preprocess preprocess;
    Postprocess postprocess;
    std::vector<GraphEntry> graphs;
    std::string default_graph;
};

// Parse and check manifest JSON text (bundle manifest.json, or the
// "sdk.manifest" metadata of a lone graph when embedded is true). source names
// it in errors; every failure is a MODEL_LOAD error naming the field.
Manifest parse_manifest(const std::string& text, const std::string& source, bool embedded);

// The checks libruntime adds for the graph it is about to run: one input, the
// image, (N, channels, h, w); float32 everywhere; fixed axes but the batch.
void check_runnable(const Manifest& manifest, const GraphEntry& entry, const std::string& source);

// Lower-case hex sha256.
std::string sha256_hex(const void* data, std::size_t size);

// Whole file into memory; MODEL_LOAD error naming what when it cannot.
std::vector<char> read_file(const std::string& path, const char* what);

// A serialized ONNX ModelProto, walked at the protobuf wire level: the bytes of
// its graph field and its metadata_props.
struct OnnxFacts {
    const char* graph = nullptr;
    std::size_t graph_size = 0;
    std::vector<std::pair<std::string, std::string>> metadata;
};
OnnxFacts scan_onnx(const std::vector<char>& model, const std::string& source);

// ---- preprocess.cpp: the C++ twin of runtime/_letterbox.py and the input checks ----

// The graph's image input: what the pre-processing produces.
struct ImageGeometry {
    int64_t channels = 0;
    int64_t height = 0;
    int64_t width = 0;
    int64_t batch = -1;  // a fixed batch the graph demands, or -1
};

// runtime/_letterbox.py fit(): the geometry of a source image on the canvas.
runtime_transform letterbox_fit(int64_t source_height, int64_t source_width, int64_t height, int64_t width);

// runtime/_letterbox.py resize_bilinear() of one plane: (h, w) -> (out_h, out_w)
// into dst with row stride dst_stride; half-pixel centres, clamped taps,
// float64 sums, float32 result.
void resize_bilinear(const float* src, int64_t h, int64_t w, float* dst, int64_t dst_stride, int64_t out_h,
                     int64_t out_w);

// Check a batch's shape, layout and channels against the manifest and the
// graph (no values read); returns the transform the pre-processing applies.
runtime_transform check_input(const runtime_input& input, const Preprocess& pre, const ImageGeometry& graph);

// Check the values of a checked batch and write the graph's input tensor,
// (batch, graph.channels, graph.height, graph.width) NCHW, into out.
void preprocess(const runtime_input& input, const Preprocess& pre, const ImageGeometry& graph,
                const runtime_transform& transform, float* out);

// ---- backends ----------------------------------------------------------------

struct LoadRequest {
    const std::vector<char>* model = nullptr;  // the verified bytes of the graph
    std::string path;                           // for messages and file-based loaders
    std::vector<TensorSpec> inputs;             // the manifest's: the engine's must agree
    std::vector<TensorSpec> outputs;
    int32_t device = RUNTIME_DEVICE_CPU;
    int32_t threads = 0;
    bool spinning = true;
};

// A float32 tensor in caller memory, named as in the graph.
struct TensorRef {
    const char* name = nullptr;
    float* data = nullptr;
    std::vector<int64_t> shape;
};

class Backend {
public:
    virtual ~Backend() = default;
    // Feed every input, compute the outputs asked for and write each into its
    // buffer (exactly the given shape). Memory is the caller's. Must be safe to
    // call from several threads at once.
    virtual void run(const std::vector<TensorRef>& inputs, const std::vector<TensorRef>& outputs) = 0;
};

// A MODEL_LOAD error when the engine's tensors
// disagree with the manifest's (names, ranks, fixed sizes, float32). kind:
// "input" or "output". Each backend lists what its engine reports and calls this.
struct EngineTensor {
    std::string name;
    std::vector<int64_t> shape;  // -1 dynamic
    bool is_float32 = true;
};
// Inline: the OpenVINO plugin is a separate library and calls it too.
inline void check_engine_tensors(const LoadRequest& request, const char* kind,
                                 const std::vector<TensorSpec>& declared, const std::vector<EngineTensor>& actual) {
    auto text = [](const std::vector<int64_t>& shape) {
        std::string s = "[";
        for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
        return s + "]";
    };
    std::string names;
    for (const EngineTensor& t : actual) names += (names.empty() ? "'" : ", '") + t.name + "'";
    if (declared.size() != actual.size()) {
        fail(RUNTIME_ERR_MODEL_LOAD, request.path + " has " + std::to_string(actual.size()) + " " + kind + "s [" +
                                         names + "]; the manifest declares " + std::to_string(declared.size()));
    }
    for (const TensorSpec& spec : declared) {
        const EngineTensor* found = nullptr;
        for (const EngineTensor& t : actual) found = t.name == spec.name ? &t : found;
        if (found == nullptr) {
            fail(RUNTIME_ERR_MODEL_LOAD, request.path + " has no " + kind + " '" + spec.name +
                                             "' (the manifest's); its " + kind + "s are [" + names + "]");
        }
        bool same = found->shape.size() == spec.shape.size() && found->is_float32;
        for (std::size_t i = 0; same && i < spec.shape.size(); ++i) {
            same = found->shape[i] < 0 || spec.shape[i] < 0 || found->shape[i] == spec.shape[i];
        }
        if (!same) {
            fail(RUNTIME_ERR_MODEL_LOAD, request.path + ": '" + spec.name + "' is " + text(found->shape) +
                                             (found->is_float32 ? " float32" : " not float32") +
                                             " in the graph; the manifest declares " + text(spec.shape) + " " +
                                             spec.dtype + " (-1: dynamic)");
        }
    }
}

std::unique_ptr<Backend> make_onnxruntime_backend(const LoadRequest& request);
const char* onnxruntime_version();  // throws Error when the library is unusable
bool openvino_available();
std::unique_ptr<Backend> make_openvino_backend(const LoadRequest& request);

}  // namespace runtime::detail
