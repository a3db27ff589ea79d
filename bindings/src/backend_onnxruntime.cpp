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

std::vector<EngineTensor> engine_tensors(Ort::Session& session, bool inputs) {
    Ort::AllocatorWithDefaultOptions allocator;
    std::vector<EngineTensor> tensors;
    const std::size_t count = inputs ? session.GetInputCount() : session.GetOutputCount();
    for (std::size_t i = 0; i < count; ++i) {
        EngineTensor t;
        t.name = (inputs ? session.GetInputNameAllocated(i, allocator) : session.GetOutputNameAllocated(i, allocator)).get();
        const Ort::TypeInfo type = inputs ? session.GetInputTypeInfo(i) : session.GetOutputTypeInfo(i);
        if (type.GetONNXType() == ONNX_TYPE_TENSOR) {
            const auto info = type.GetTensorTypeAndShapeInfo();
            t.shape = info.GetShape();
            t.is_float32 = info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
        } else {
            t.is_float32 = false;
        }
        tensors.push_back(std::move(t));
    }
    return tensors;
}

class OnnxRuntimeBackend final : public Backend {
public:
    explicit OnnxRuntimeBackend(const LoadRequest& request) : env_(shared_env()) {
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
        check_engine_tensors(request, "input", request.inputs, engine_tensors(session_, true));
        check_engine_tensors(request, "output", request.outputs, engine_tensors(session_, false));
    }

    void run(const std::vector<TensorRef>& inputs, const std::vector<TensorRef>& outputs) override {
        try {
            // Every tensor wraps the caller's memory: ONNX Runtime reads the
            // input in place and writes each result straight into its buffer;
            // outputs not asked for are not computed.
            const Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeCPU);
            std::vector<const char*> in_names, out_names;
            std::vector<Ort::Value> in_values, out_values;
            for (const TensorRef& t : inputs) {
                in_names.push_back(t.name);
                in_values.push_back(wrap(memory, t));
            }
            for (const TensorRef& t : outputs) {
                out_names.push_back(t.name);
                out_values.push_back(wrap(memory, t));
            }
            session_.Run(Ort::RunOptions{nullptr}, in_names.data(), in_values.data(), in_values.size(),
                         out_names.data(), out_values.data(), out_values.size());
        } catch (const Ort::Exception& exc) {
            fail(RUNTIME_ERR_BACKEND, std::string("ONNX Runtime failed to run the graph: ") + exc.what());
        }
    }

private:
    static Ort::Value wrap(const Ort::MemoryInfo& memory, const TensorRef& t) {
        std::size_t n = 1;
        for (int64_t d : t.shape) n *= std::size_t(d);
        return Ort::Value::CreateTensor<float>(memory, t.data, n, t.shape.data(), t.shape.size());
    }

    std::shared_ptr<Ort::Env> env_;
    Ort::Session session_{nullptr};
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
