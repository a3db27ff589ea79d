// Header-only C++ wrapper over runtime.h: RAII sessions, exceptions instead of
// status codes, results in std::vector. Same thread-safety rules as the C API:
// Session::run, Session::heatmap and Session::run_keypoints may be called from
// several threads at once on one Session; moving or destroying a Session must
// not race with them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "runtime/runtime.h"

namespace runtime {

// A failed libruntime call: the status and the library's message.
class Error : public std::runtime_error {
public:
    Error(runtime_status status, const std::string& message)
        : std::runtime_error(std::string(runtime_status_string(status)) + ": " + message),
          status_(status),
          message_(message) {}
    runtime_status status() const noexcept { return status_; }
    // The library's message without the status prefix.
    const std::string& message() const noexcept { return message_; }

private:
    runtime_status status_;
    std::string message_;
};

inline void check(runtime_status status) {
    if (status != RUNTIME_OK) throw Error(status, runtime_last_error());
}

// Session options with defaults filled in; chain the setters.
struct Options : runtime_session_options {
    Options() { runtime_session_options_init(this); }
    Options& with_backend(runtime_backend value) { backend = value; return *this; }
    Options& with_device(runtime_device value) { device = value; return *this; }
    Options& with_precision(runtime_precision value) { precision = value; return *this; }
    Options& with_layer(runtime_layer value) { layer = value; return *this; }
    Options& with_threads(int32_t value) { intra_op_threads = value; return *this; }
    Options& with_verify(bool value) { verify_sha256 = value ? 1 : 0; return *this; }
    Options& with_spinning(bool value) { allow_spinning = value ? 1 : 0; return *this; }
};

// A view of caller-owned images in the manifest's source range, batch back to back.
struct Images {
    const float* data = nullptr;
    int64_t batch = 1;
    int64_t channels = 3;
    int64_t height = 0;
    int64_t width = 0;
    runtime_layout layout = RUNTIME_LAYOUT_CHW;
    bool prescaled = false;  // data already is the graph's scaled NCHW image input

    runtime_input input() const {
        runtime_input in;
        runtime_input_init(&in);
        in.data = data;
        in.batch = batch;
        in.channels = channels;
        in.height = height;
        in.width = width;
        in.layout = layout;
        in.prescaled = prescaled ? 1 : 0;
        return in;
    }
};

// A graph input or output as the manifest declares it (-1: the dynamic batch axis).
struct TensorInfo {
    std::string name;
    std::string role;
    runtime_dtype dtype = RUNTIME_DTYPE_FLOAT32;
    std::vector<int64_t> shape;
};

// One output of a run: the graph's shape with the batch filled in, C order.
struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> data;
};

// Every output of a run, in the graph's order, and where the images lay on its input.
struct Outputs {
    std::vector<Tensor> tensors;
    runtime_transform transform{};

    const Tensor& operator[](const std::string& name) const {
        for (const Tensor& t : tensors) {
            if (t.name == name) return t;
        }
        throw Error(RUNTIME_ERR_INVALID_ARGUMENT, "no output '" + name + "'");
    }
};

// A (batch, height, width) heatmap in graph-input pixels.
struct Heatmap {
    std::vector<float> data;
    int64_t batch = 0, height = 0, width = 0;
    runtime_transform transform{};
};

// One named point in source-image pixels. Reported whatever its score: it was
// found when score >= the session's keypoint_threshold (or the caller's own).
struct Keypoint {
    std::string name;
    double x = 0.0, y = 0.0;
    double score = 0.0;
};

// The decoded points of one image, in the manifest's order, and its angle.
struct Keypoints {
    std::vector<Keypoint> points;
    bool has_angle = false;
    double angle = 0.0;  // degrees; valid when has_angle
    runtime_transform transform{};

    const Keypoint& operator[](const std::string& name) const {
        for (const Keypoint& p : points) {
            if (p.name == name) return p;
        }
        throw Error(RUNTIME_ERR_INVALID_ARGUMENT, "no keypoint '" + name + "'");
    }
};

// In place: (x, y) pairs from graph-input pixels to source-image pixels.
inline void map_to_source(const runtime_transform& transform, double* xy, std::size_t count) {
    check(runtime_map_to_source(&transform, xy, count));
}

class Session {
public:
    explicit Session(const std::string& path, const Options& options = Options()) {
        check(runtime_session_create(path.c_str(), &options, &handle_));
    }
    // A lone graph from memory (the bytes are copied; see runtime_session_create_from_memory).
    static Session from_memory(const void* model, std::size_t size, const std::string& name,
                               const Options& options = Options()) {
        runtime_session* handle = nullptr;
        check(runtime_session_create_from_memory(model, size, name.c_str(), &options, &handle));
        return Session(handle);
    }
    Session(Session&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Session& operator=(Session&& other) noexcept {
        if (this != &other) {
            runtime_session_destroy(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;
    ~Session() { runtime_session_destroy(handle_); }

    runtime_session* get() const noexcept { return handle_; }

    // Strings in the result live as long as this Session.
    runtime_session_info info() const {
        runtime_session_info value;
        runtime_session_info_init(&value);
        check(runtime_session_get_info(handle_, &value));
        return value;
    }

    std::vector<TensorInfo> inputs() const { return tensors(runtime_session_input_count, runtime_session_input_info); }
    std::vector<TensorInfo> outputs() const {
        return tensors(runtime_session_output_count, runtime_session_output_info);
    }

    std::size_t find_output(const std::string& name) const {
        std::size_t index = 0;
        check(runtime_session_find_output(handle_, name.c_str(), &index));
        return index;
    }

    // Into caller-owned buffers: buffers[i] for output i (data null: not wanted).
    // Returns the transform.
    runtime_transform run(const Images& images, std::vector<runtime_tensor_buffer>& buffers) const {
        const runtime_input in = images.input();
        runtime_outputs out;
        runtime_outputs_init(&out);
        out.tensors = buffers.data();
        out.count = buffers.size();
        check(runtime_session_run(handle_, &in, &out));
        return out.transform;
    }

    // Every output, freshly allocated.
    Outputs run(const Images& images) const {
        const std::vector<TensorInfo> specs = outputs();
        std::vector<runtime_tensor_buffer> buffers(specs.size(), runtime_tensor_buffer{nullptr, 0, 0});
        const runtime_input in = images.input();
        runtime_outputs out;
        runtime_outputs_init(&out);
        out.tensors = buffers.data();
        out.count = buffers.size();
        const runtime_status query = runtime_session_run(handle_, &in, &out);  // sizes only
        if (query != RUNTIME_ERR_BUFFER_TOO_SMALL) check(query);
        Outputs result;
        for (std::size_t i = 0; i < specs.size(); ++i) {
            Tensor t{specs[i].name, specs[i].shape, std::vector<float>(buffers[i].needed)};
            if (!t.shape.empty() && t.shape[0] < 0) t.shape[0] = images.batch;
            result.tensors.push_back(std::move(t));
            buffers[i].data = result.tensors[i].data.data();
            buffers[i].capacity = buffers[i].needed;
        }
        check(runtime_session_run(handle_, &in, &out));
        result.transform = out.transform;
        return result;
    }

    // Heatmap families: the heatmap into a caller-owned buffer (floats); returns the floats written.
    std::size_t heatmap(const Images& images, float* heatmap, std::size_t capacity,
                        runtime_transform* transform = nullptr) const {
        const runtime_input in = images.input();
        std::size_t needed = 0;
        check(runtime_session_run_heatmap(handle_, &in, heatmap, capacity, &needed, transform));
        return needed;
    }

    // Heatmap families: a freshly allocated (batch, H, W) heatmap.
    Heatmap heatmap(const Images& images) const {
        const runtime_input in = images.input();
        Heatmap result;
        std::size_t needed = 0;
        const runtime_status query = runtime_session_run_heatmap(handle_, &in, nullptr, 0, &needed, nullptr);
        if (query != RUNTIME_ERR_BUFFER_TOO_SMALL) check(query);
        result.data.resize(needed);
        check(runtime_session_run_heatmap(handle_, &in, result.data.data(), needed, &needed, &result.transform));
        const std::vector<int64_t> shape = outputs()[info().heatmap_output].shape;  // (N, C, H, W)
        result.batch = images.batch;
        result.height = shape[2];
        result.width = shape[3];
        return result;
    }

    // The manifest's preprocess.color_order: which colour plane of a PNG/JPEG goes in
    // channel 0 of Images. BGR: pass an OpenCV cv::Mat (BGR) as is; RGB: convert it first
    // (cv::cvtColor(mat, mat, cv::COLOR_BGR2RGB)). TIFF data is never reordered.
    runtime_color_order color_order() const {
        int32_t order = RUNTIME_COLOR_ORDER_RGB;
        check(runtime_session_color_order(handle_, &order));
        return runtime_color_order(order);
    }

    // Keypoints families: the names of the points, in the order of every result.
    std::vector<std::string> keypoint_names() const {
        std::vector<std::string> names(info().keypoint_count);
        for (std::size_t i = 0; i < names.size(); ++i) {
            const char* name = nullptr;
            check(runtime_session_keypoint_name(handle_, i, &name));
            names[i] = name;
        }
        return names;
    }

    // Keypoints families: one runtime_keypoints per image into a caller-owned
    // array of capacity entries; returns the entries written (the batch).
    std::size_t run_keypoints(const Images& images, runtime_keypoints* keypoints, std::size_t capacity) const {
        const runtime_input in = images.input();
        std::size_t needed = 0;
        check(runtime_session_run_keypoints(handle_, &in, keypoints, capacity, &needed));
        return needed;
    }

    // Keypoints families: the named points of every image, in source-image pixels.
    std::vector<Keypoints> run_keypoints(const Images& images) const {
        std::vector<runtime_keypoints> raw(std::size_t(images.batch > 0 ? images.batch : 0));
        run_keypoints(images, raw.data(), raw.size());
        const std::vector<std::string> names = keypoint_names();
        std::vector<Keypoints> result;
        for (const runtime_keypoints& r : raw) {
            Keypoints k;
            for (std::size_t i = 0; i < r.count && i < names.size(); ++i) {
                k.points.push_back({names[i], r.x[i], r.y[i], r.score[i]});
            }
            k.has_angle = r.has_angle != 0;
            k.angle = r.angle;
            k.transform = r.transform;
            result.push_back(std::move(k));
        }
        return result;
    }

private:
    explicit Session(runtime_session* handle) noexcept : handle_(handle) {}

    using CountFn = runtime_status (*)(const runtime_session*, size_t*);
    using InfoFn = runtime_status (*)(const runtime_session*, size_t, runtime_tensor_info*);
    std::vector<TensorInfo> tensors(CountFn count_fn, InfoFn info_fn) const {
        std::size_t count = 0;
        check(count_fn(handle_, &count));
        std::vector<TensorInfo> result;
        for (std::size_t i = 0; i < count; ++i) {
            runtime_tensor_info t;
            runtime_tensor_info_init(&t);
            check(info_fn(handle_, i, &t));
            result.push_back({t.name, t.role, runtime_dtype(t.dtype), std::vector<int64_t>(t.dims, t.dims + t.rank)});
        }
        return result;
    }

    runtime_session* handle_ = nullptr;
};

inline std::string version() { return runtime_version(); }

inline std::string onnxruntime_version() {
    const char* v = runtime_onnxruntime_version();
    if (v == nullptr) throw Error(RUNTIME_ERR_BACKEND, runtime_last_error());
    return v;
}

inline bool has_backend(runtime_backend backend) { return runtime_has_backend(backend) != 0; }

}  // namespace runtime
