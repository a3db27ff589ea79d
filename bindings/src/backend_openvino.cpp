// OpenVINO backend, built as the plugin libruntime_openvino.so.
//
// OpenVINO is optional for an install (`pip install edge-vision-sdk[openvino]`),
// so libruntime does not link it: it dlopen()s this plugin the first time the
// backend is asked for, and a missing OpenVINO becomes RUNTIME_ERR_UNSUPPORTED
// instead of an unloadable libruntime.
#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include <openvino/openvino.hpp>

#include "internal.hpp"

namespace runtime::detail {
namespace {

std::shared_ptr<ov::Core> shared_core() {
    static std::mutex mutex;
    static std::weak_ptr<ov::Core> weak;
    std::lock_guard<std::mutex> lock(mutex);
    std::shared_ptr<ov::Core> core = weak.lock();
    if (!core) {
        core = std::make_shared<ov::Core>();
        weak = core;
    }
    return core;
}

std::vector<EngineTensor> engine_tensors(const std::vector<ov::Output<ov::Node>>& ports) {
    std::vector<EngineTensor> tensors;
    for (const auto& port : ports) {
        EngineTensor t;
        t.name = port.get_names().empty() ? std::string() : port.get_any_name();
        for (const auto& dim : port.get_partial_shape()) t.shape.push_back(dim.is_static() ? dim.get_length() : -1);
        t.is_float32 = port.get_element_type() == ov::element::f32;
        tensors.push_back(std::move(t));
    }
    return tensors;
}

class OpenVinoBackend final : public Backend {
public:
    explicit OpenVinoBackend(const LoadRequest& request) : core_(shared_core()) {
        const std::string device = request.device == RUNTIME_DEVICE_GPU ? "GPU" : "CPU";
        // The ONNX frontend reads from memory: the bytes whose sha256 was checked
        // are the bytes compiled.
        std::shared_ptr<ov::Model> model =
            core_->read_model(std::string(request.model->data(), request.model->size()), ov::Tensor());
        check_engine_tensors(request, "input", request.inputs, engine_tensors(model->inputs()));
        check_engine_tensors(request, "output", request.outputs, engine_tensors(model->outputs()));
        ov::AnyMap config;
        // On CPUs with AMX/AVX512-BF16 OpenVINO would otherwise compute in bf16
        // (errors ~1e-3 on the heatmap): the graph's precision is the contract.
        config.emplace(ov::hint::inference_precision(ov::element::f32));
        if (request.threads > 0) config.emplace(ov::inference_num_threads(request.threads));
        compiled_ = core_->compile_model(model, device, config);
    }

    void run(const std::vector<TensorRef>& inputs, const std::vector<TensorRef>& outputs) override {
        ov::InferRequest request = acquire();
        try {
            // Inputs are read in place. Outputs are copied out of the request's
            // own tensors: binding caller memory to a pooled request would leave
            // it pointing at a buffer a later call does not own.
            for (const TensorRef& t : inputs) {
                request.set_tensor(t.name, ov::Tensor(ov::element::f32, ov::Shape(t.shape.begin(), t.shape.end()), t.data));
            }
            request.infer();
            for (const TensorRef& t : outputs) {
                const ov::Tensor result = request.get_tensor(t.name);
                const ov::Shape expected(t.shape.begin(), t.shape.end());
                if (result.get_shape() != expected || result.get_element_type() != ov::element::f32) {
                    fail(RUNTIME_ERR_BACKEND, "OpenVINO returned '" + std::string(t.name) + "' as " +
                                                  result.get_shape().to_string() + " " +
                                                  result.get_element_type().get_type_name() + ", expected " +
                                                  expected.to_string() + " f32");
                }
                std::copy_n(result.data<const float>(), result.get_size(), t.data);
            }
        } catch (const ov::Exception& exc) {
            fail(RUNTIME_ERR_BACKEND, std::string("OpenVINO failed to run the graph: ") + exc.what());
        }
        release(std::move(request));
    }

private:
    // Infer requests are not thread-safe: each concurrent call takes its own
    // from a pool that grows to the peak concurrency.
    ov::InferRequest acquire() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!idle_.empty()) {
                ov::InferRequest request = std::move(idle_.back());
                idle_.pop_back();
                return request;
            }
        }
        try {
            return compiled_.create_infer_request();
        } catch (const ov::Exception& exc) {
            fail(RUNTIME_ERR_BACKEND, std::string("OpenVINO cannot create an infer request: ") + exc.what());
        }
    }

    void release(ov::InferRequest request) {
        std::lock_guard<std::mutex> lock(mutex_);
        idle_.push_back(std::move(request));
    }

    std::shared_ptr<ov::Core> core_;
    ov::CompiledModel compiled_;
    std::mutex mutex_;
    std::vector<ov::InferRequest> idle_;
};

}  // namespace
}  // namespace runtime::detail

// The plugin's one entry point, looked up with dlsym by libruntime (same build,
// same compiler: C++ types may cross this internal boundary).
extern "C" __attribute__((visibility("default"))) runtime::detail::Backend* runtime_openvino_backend_create(
    const runtime::detail::LoadRequest* request) {
    using namespace runtime::detail;
    try {
        return new OpenVinoBackend(*request);
    } catch (const ov::Exception& exc) {
        const std::string where = request->device == RUNTIME_DEVICE_GPU ? " on the GPU" : "";
        fail(RUNTIME_ERR_BACKEND, "OpenVINO cannot load " + request->path + where + ": " + exc.what());
    }
}

extern "C" __attribute__((visibility("default"))) const char* runtime_openvino_version() {
    static const std::string version = ov::get_openvino_version().buildNumber;
    return version.c_str();
}
