// Internal declarations of libruntime: never installed, never seen by hosts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace runtime::detail {

// Every failure inside the library is an Error carrying the status the C API
// returns; the entry points in c_api.cpp turn it into status + last error.
class __attribute__((visibility("default"))) Error : public std::runtime_error {
public:
    Error(runtime_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
    runtime_status status() const noexcept { return status_; }

private:
    runtime_status status_;
};

[[noreturn]] inline void fail(runtime_status status, const std::string& message) { throw Error(status, message); }

// ---- manifest.cpp ----------------------------------------------------------

struct TensorSpec {
    std::string name;
    std::vector<int64_t> shape;  // -1 for a named (dynamic) axis
    std::string dtype;
};

struct GraphEntry {
    std::string file;
    std::string layer;
    std::string precision;
    std::string mode;
    std::string sha256;  // empty for the entry embedded in a lone graph
    int64_t opset = 0;
    std::vector<TensorSpec> inputs;
    std::vector<TensorSpec> outputs;
};

struct Preprocess {
    std::vector<int64_t> accepted_channels;  // {3, 4}
    int64_t drop_channels_from = 3;
    double scale = 1.0 / 255.0;
    double range_low = 0.0;
    double range_high = 255.0;
    int64_t height = 0;  // full-image size; patch graphs take their own size
    int64_t width = 0;
};

struct Postprocess {
    std::string kind;  // "heatmap"
    int64_t channel = 0;
    double threshold = 0.5;
};

struct Manifest {
    std::string family;
    std::string image_type;
    Preprocess preprocess;
    Postprocess postprocess;
    std::vector<GraphEntry> graphs;
    std::string default_graph;
};

// Parse manifest JSON text (bundle manifest.json, or the "sdk.manifest"
// metadata of a lone graph when embedded is true). source names it in errors.
Manifest parse_manifest(const std::string& text, const std::string& source, bool embedded);

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

// ---- preprocess.cpp --------------------------------------------------------

// Check a batch's shape, channels and layout against the graph.
void check_input(const runtime_input& input, const Preprocess& pre, int64_t model_channels, int64_t height,
                 int64_t width);
// Check the values of a checked batch and write it as scaled NCHW (model_channels).
void preprocess(const runtime_input& input, const Preprocess& pre, int64_t model_channels, int64_t height,
                int64_t width, float* out);

// ---- backends ----------------------------------------------------------------

struct LoadRequest {
    const std::vector<char>* model = nullptr;  // the verified bytes of the graph
    std::string path;                           // for messages and file-based loaders
    std::string input_name;
    std::string output_name;
    int32_t device = RUNTIME_DEVICE_CPU;
    int32_t threads = 0;
    bool spinning = true;
};

class Backend {
public:
    virtual ~Backend() = default;
    // input: (batch,C,H,W) NCHW; output: (batch,OC,H,W); both owned by the caller.
    // Must be safe to call from several threads at once.
    virtual void run(const float* input, const std::vector<int64_t>& input_shape, float* output,
                     const std::vector<int64_t>& output_shape) = 0;
};

std::unique_ptr<Backend> make_onnxruntime_backend(const LoadRequest& request);
const char* onnxruntime_version();  // throws Error when the library is unusable
bool openvino_available();
std::unique_ptr<Backend> make_openvino_backend(const LoadRequest& request);

}  // namespace runtime::detail
