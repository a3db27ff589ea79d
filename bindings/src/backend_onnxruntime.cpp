// ONNX Runtime backend through its C API (via the header-only C++ wrapper).
//
// The library comes from the onnxruntime wheel and the headers may be older
// (Debian's libonnxruntime-dev): the C API is backward compatible, so the
// headers' ORT_API_VERSION is requested at run time and a library older than
// the headers fails clearly instead of crashing.
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "internal.hpp"

namespace runtime::detail {
namespace {

// ONNX Runtime logs to stderr by default; a library must not print. Set
// RUNTIME_ORT_LOG=1 to see its messages while debugging a graph.
void ORT_API_CALL stderr_logger(void*, OrtLoggingLevel, const char* category, const char* logid, const char* where,
                               const char* message) {
    std::fprintf(stderr, "[onnxruntime %s %s %s] %s\n", category, logid, where, message);
}

struct OrtState {
    const OrtApi* api = nullptr;
    std::string version;
    std::string error;  // set when the library is unusable
    std::mutex env_mutex;
    std::weak_ptr<Ort::Env> env;
};

OrtState& state() {
    static OrtState* s = [] {
        auto* st = new OrtState;  // intentionally immortal: sessions may outlive static destruction order
        const OrtApiBase* base = OrtGetApiBase();
        st->version = base->GetVersionString();
        st->api = base->GetApi(ORT_API_VERSION);
        if (st->api == nullptr) {
            st->error = "the ONNX Runtime library is version " + st->version + " and does not provide C API version " +
                        std::to_string(ORT_API_VERSION) + ", which libruntime was compiled against; install " +
                        "onnxruntime >= 1." + std::to_string(ORT_API_VERSION);
        } else {
            Ort::InitApi(st->api);
        }
        return st;
    }();
    return *s;
}

const OrtApi& api() {
    OrtState& s = state();
    if (s.api == nullptr) fail(RUNTIME_ERR_BACKEND, s.error);
    return *s.api;
}

// One environment for the process, shared by the sessions that use it and freed
// with the last of them.
std::shared_ptr<Ort::Env> shared_env() {
    api();
    OrtState& s = state();
    std::lock_guard<std::mutex> lock(s.env_mutex);
    std::shared_ptr<Ort::Env> env = s.env.lock();
    if (!env) {
        const char* flag = std::getenv("RUNTIME_ORT_LOG");
        const bool verbose = flag != nullptr && flag[0] != '\0' && flag[0] != '0';
        env = verbose ? std::make_shared<Ort::Env>(ORT_LOGGING_LEVEL_WARNING, "libruntime", stderr_logger, nullptr)
                      : std::make_shared<Ort::Env>(ORT_LOGGING_LEVEL_FATAL, "libruntime");
        s.env = env;
    }
    return env;
}

class OnnxRuntimeBackend final : public Backend {
public:
    explicit OnnxRuntimeBackend(const LoadRequest& request)
        : env_(shared_env()), input_name_(request.input_name), output_name_(request.output_name) {
        Ort::SessionOptions options;
        options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
        if (request.threads > 0) options.SetIntraOpNumThreads(request.threads);
        if (!request.spinning) {
            options.AddConfigEntry("session.intra_op.allow_spinning", "0");
            options.AddConfigEntry("session.inter_op.allow_spinning", "0");
        }
        if (request.device == RUNTIME_DEVICE_GPU) {
            OrtCUDAProviderOptionsV2* cuda = nullptr;
            Ort::ThrowOnError(api().CreateCUDAProviderOptions(&cuda));
            std::unique_ptr<OrtCUDAProviderOptionsV2, void (*)(OrtCUDAProviderOptionsV2*)> owned(
                cuda, [](OrtCUDAProviderOptionsV2* p) { Ort::GetApi().ReleaseCUDAProviderOptions(p); });
            options.AppendExecutionProvider_CUDA_V2(*cuda);
        }
        session_ = Ort::Session(*env_, request.model->data(), request.model->size(), options);

        Ort::AllocatorWithDefaultOptions allocator;
        if (session_.GetInputCount() != 1 || session_.GetOutputCount() != 1) {
            fail(RUNTIME_ERR_MODEL_LOAD, request.path + " has " + std::to_string(session_.GetInputCount()) +
                                             " inputs and " + std::to_string(session_.GetOutputCount()) +
                                             " outputs; the manifest describes one of each");
        }
        const std::string in = session_.GetInputNameAllocated(0, allocator).get();
        const std::string out = session_.GetOutputNameAllocated(0, allocator).get();
        if (in != input_name_ || out != output_name_) {
            fail(RUNTIME_ERR_MODEL_LOAD, request.path + " has input '" + in + "' and output '" + out +
                                             "'; the manifest says '" + input_name_ + "' and '" + output_name_ + "'");
        }
    }

    void run(const float* input, const std::vector<int64_t>& input_shape, float* output,
             const std::vector<int64_t>& output_shape) override {
        try {
            // Both tensors wrap the caller's memory: ONNX Runtime writes the
            // result straight into the output buffer.
            const Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeCPU);
            Ort::Value in = Ort::Value::CreateTensor<float>(memory, const_cast<float*>(input), count(input_shape),
                                                            input_shape.data(), input_shape.size());
            Ort::Value out = Ort::Value::CreateTensor<float>(memory, output, count(output_shape), output_shape.data(),
                                                             output_shape.size());
            const char* in_name = input_name_.c_str();
            const char* out_name = output_name_.c_str();
            session_.Run(Ort::RunOptions{nullptr}, &in_name, &in, 1, &out_name, &out, 1);
        } catch (const Ort::Exception& exc) {
            fail(RUNTIME_ERR_BACKEND, std::string("ONNX Runtime failed to run the graph: ") + exc.what());
        }
    }

private:
    static std::size_t count(const std::vector<int64_t>& shape) {
        std::size_t n = 1;
        for (int64_t d : shape) n *= std::size_t(d);
        return n;
    }

    std::shared_ptr<Ort::Env> env_;
    Ort::Session session_{nullptr};
    std::string input_name_;
    std::string output_name_;
};

}  // namespace

const char* onnxruntime_version() {
    api();
    return state().version.c_str();
}

std::unique_ptr<Backend> make_onnxruntime_backend(const LoadRequest& request) {
    try {
        return std::make_unique<OnnxRuntimeBackend>(request);
    } catch (const Ort::Exception& exc) {
        const std::string where = request.device == RUNTIME_DEVICE_GPU ? " on the GPU (CUDA provider)" : "";
        fail(RUNTIME_ERR_BACKEND, "ONNX Runtime cannot load " + request.path + where + ": " + exc.what());
    }
}

}  // namespace runtime::detail
