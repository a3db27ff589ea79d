// Header-only C++ wrapper over runtime.h: RAII sessions, exceptions instead of
// status codes. Same thread-safety rules as the C API: Session::run may be
// called from several threads at once on one Session.
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

// A view of caller-owned images (0..255 floats), batch back to back.
struct Images {
    const float* data = nullptr;
    int64_t batch = 1;
    int64_t channels = 3;
    int64_t height = 0;
    int64_t width = 0;
    runtime_layout layout = RUNTIME_LAYOUT_CHW;
    bool prescaled = false;  // data already is the graph's scaled NCHW tensor
};

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
        runtime_session_info value{};
        value.struct_size = sizeof(value);
        check(runtime_session_get_info(handle_, &value));
        return value;
    }

    std::vector<int64_t> input_shape() const { return shape(runtime_session_input_shape); }
    std::vector<int64_t> output_shape() const { return shape(runtime_session_output_shape); }

    // Into caller-owned buffers (either may be null); sizes in floats.
    void run(const Images& images, float* heatmap, std::size_t heatmap_capacity, float* raw = nullptr,
             std::size_t raw_capacity = 0) const {
        runtime_input input;
        runtime_input_init(&input);
        input.data = images.data;
        input.batch = images.batch;
        input.channels = images.channels;
        input.height = images.height;
        input.width = images.width;
        input.layout = images.layout;
        input.prescaled = images.prescaled ? 1 : 0;
        runtime_output output;
        runtime_output_init(&output);
        output.heatmap = heatmap;
        output.heatmap_capacity = heatmap_capacity;
        output.raw = raw;
        output.raw_capacity = raw_capacity;
        check(runtime_session_run(handle_, &input, &output));
    }

    // Convenience: a freshly allocated (batch, H, W) heatmap.
    std::vector<float> heatmap(const Images& images) const {
        std::vector<float> result(std::size_t(images.batch) * std::size_t(images.height) * std::size_t(images.width));
        run(images, result.data(), result.size());
        return result;
    }

    // Convenience: a freshly allocated raw output (batch, C, H, W).
    std::vector<float> raw(const Images& images) const {
        const std::vector<int64_t> out = output_shape();
        std::vector<float> result(std::size_t(images.batch) * std::size_t(out[1]) * std::size_t(out[2]) *
                                  std::size_t(out[3]));
        run(images, nullptr, 0, result.data(), result.size());
        return result;
    }

private:
    explicit Session(runtime_session* handle) noexcept : handle_(handle) {}

    using ShapeFn = runtime_status (*)(const runtime_session*, int64_t*, size_t, size_t*);
    std::vector<int64_t> shape(ShapeFn fn) const {
        std::vector<int64_t> dims(8);
        std::size_t rank = 0;
        check(fn(handle_, dims.data(), dims.size(), &rank));
        dims.resize(rank);
        return dims;
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
