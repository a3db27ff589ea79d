// runtime._native: the pybind11 shim over libruntime's C++ wrapper.
//
// Zero-copy both ways: a float32 C-contiguous numpy image is read in place and
// the results are written by libruntime straight into numpy arrays allocated
// here. The GIL is released while the engine runs, so Python threads can share
// one Session. Statuses become the SDK's error classes (runtime._errors).
//
// Import it through runtime._backends.native, which first loads the onnxruntime
// wheel's libonnxruntime.so.<version> (the name libruntime needs is .so.1).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <string_view>

#include "runtime/runtime.hpp"

namespace py = pybind11;

namespace {

[[noreturn]] void raise(runtime_status status, const std::string& message) {
    const char* name = "BackendError";
    switch (status) {
        case RUNTIME_ERR_INVALID_ARGUMENT:
        case RUNTIME_ERR_INVALID_INPUT:
        case RUNTIME_ERR_BUFFER_TOO_SMALL: name = "InvalidInputError"; break;
        case RUNTIME_ERR_MODEL_LOAD: name = "ModelLoadError"; break;
        case RUNTIME_ERR_BACKEND:
        case RUNTIME_ERR_UNSUPPORTED: name = "BackendError"; break;
        default: throw std::runtime_error(message);
    }
    py::object cls = py::module_::import("runtime._errors").attr(name);
    PyErr_SetString(cls.ptr(), message.c_str());
    throw py::error_already_set();
}

template <class T>
T parse_enum(const std::string& value, const char* what, std::initializer_list<std::pair<const char*, T>> choices) {
    std::string names;
    for (const auto& [name, v] : choices) {
        if (value == name) return v;
        names += std::string(names.empty() ? "" : ", ") + "'" + name + "'";
    }
    raise(RUNTIME_ERR_INVALID_ARGUMENT, std::string(what) + " '" + value + "' is not one of " + names);
}

runtime::Options make_options(const std::string& backend, const std::string& device,
                              const std::optional<std::string>& precision, const std::optional<std::string>& layer,
                              int threads, bool verify, bool spinning) {
    runtime::Options options;
    options.backend = parse_enum<runtime_backend>(backend, "backend",
                                                  {{"auto", RUNTIME_BACKEND_AUTO},
                                                   {"onnxruntime", RUNTIME_BACKEND_ONNXRUNTIME},
                                                   {"openvino", RUNTIME_BACKEND_OPENVINO}});
    options.device = parse_enum<runtime_device>(device, "device", {{"cpu", RUNTIME_DEVICE_CPU}, {"gpu", RUNTIME_DEVICE_GPU}});
    if (precision) {
        options.precision = parse_enum<runtime_precision>(
            *precision, "precision",
            {{"fp32", RUNTIME_PRECISION_FP32}, {"fp16", RUNTIME_PRECISION_FP16}, {"int8", RUNTIME_PRECISION_INT8}});
    }
    if (layer) {
        options.layer = parse_enum<runtime_layer>(
            *layer, "layer", {{"base", RUNTIME_LAYER_BASE}, {"patch", RUNTIME_LAYER_PATCH}, {"full", RUNTIME_LAYER_FULL}});
    }
    if (threads < 0) raise(RUNTIME_ERR_INVALID_ARGUMENT, "threads must be 0 (engine default) or more, got " +
                                                             std::to_string(threads));
    options.intra_op_threads = threads;
    options.verify_sha256 = verify ? 1 : 0;
    options.allow_spinning = spinning ? 1 : 0;
    return options;
}

std::string shape_text(const py::array& a) {
    std::string text = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) text += (i ? ", " : "") + std::to_string(a.shape(i));
    return text + (a.ndim() == 1 ? ",)" : ")");
}

class PySession {
public:
    // path: a bundle directory or .onnx file (str / os.PathLike), or the bytes of a lone graph.
    PySession(const py::object& model, const std::string& backend, const std::string& device,
              const std::optional<std::string>& precision, const std::optional<std::string>& layer, int threads,
              bool verify, bool spinning, const std::string& name) {
        const runtime::Options options = make_options(backend, device, precision, layer, threads, verify, spinning);
        if (py::isinstance<py::bytes>(model)) {
            const std::string_view bytes = model.cast<std::string_view>();  // no copy; the GIL keeps it alive
            try {
                py::gil_scoped_release release;  // loading a graph can take a while
                session_.emplace(runtime::Session::from_memory(bytes.data(), bytes.size(), name, options));
            } catch (const runtime::Error& e) {
                raise(e.status(), e.message());
            }
        } else {
            const std::string path = py::str(py::module_::import("os").attr("fspath")(model));
            try {
                py::gil_scoped_release release;
                session_.emplace(path, options);
            } catch (const runtime::Error& e) {
                raise(e.status(), e.message());
            }
        }
        info_ = session_->info();
    }

    py::dict info() const {
        py::dict d;
        d["family"] = info_.family;
        d["graph_file"] = info_.graph_file;
        d["layer"] = info_.layer;
        d["precision"] = info_.precision;
        d["input_name"] = info_.input_name;
        d["output_name"] = info_.output_name;
        d["backend"] = info_.backend == RUNTIME_BACKEND_OPENVINO ? "openvino" : "onnxruntime";
        d["device"] = info_.device == RUNTIME_DEVICE_GPU ? "gpu" : "cpu";
        d["input_channels"] = info_.input_channels;
        d["output_channels"] = info_.output_channels;
        d["height"] = info_.height;
        d["width"] = info_.width;
        d["has_heatmap"] = bool(info_.has_heatmap);
        d["heatmap_channel"] = info_.heatmap_channel;
        d["threshold"] = info_.threshold;
        return d;
    }

    std::vector<int64_t> input_shape() const { return session_->input_shape(); }
    std::vector<int64_t> output_shape() const { return session_->output_shape(); }

    // image: float32, C-contiguous, (C,H,W) / (H,W,C) / (B,C,H,W) / (B,H,W,C).
    py::object run(const py::array& image, const std::string& layout, bool heatmap, bool raw, bool prescaled) {
        if (!heatmap && !raw) raise(RUNTIME_ERR_INVALID_ARGUMENT, "ask for the heatmap, the raw output or both");
        if (!image.dtype().is(py::dtype::of<float>())) {
            raise(RUNTIME_ERR_INVALID_INPUT, "expected a float32 array with values in 0..255, got dtype " +
                                                 std::string(py::str(image.dtype())) + " (shape " + shape_text(image) +
                                                 "); convert with array.astype(np.float32)");
        }
        if (!(image.flags() & py::array::c_style)) {
            raise(RUNTIME_ERR_INVALID_INPUT, "expected a C-contiguous array (shape " + shape_text(image) +
                                                 "); pass np.ascontiguousarray(image)");
        }
        const py::ssize_t ndim = image.ndim();
        if (ndim != 3 && ndim != 4) {
            raise(RUNTIME_ERR_INVALID_INPUT,
                  "expected an image (C, H, W) or (H, W, C), or a batch of them, got shape " + shape_text(image));
        }
        const bool batched = ndim == 4;
        const py::ssize_t first = batched ? 1 : 0;
        runtime_layout lay;
        if (layout == "chw") {
            lay = RUNTIME_LAYOUT_CHW;
        } else if (layout == "hwc") {
            lay = RUNTIME_LAYOUT_HWC;
        } else if (layout == "auto") {
            // The channel axis is the short one: strips are far taller and wider than deep.
            lay = image.shape(first) <= 4 || image.shape(first) <= image.shape(ndim - 1) ? RUNTIME_LAYOUT_CHW
                                                                                        : RUNTIME_LAYOUT_HWC;
        } else {
            raise(RUNTIME_ERR_INVALID_ARGUMENT, "layout '" + layout + "' is not one of 'auto', 'chw', 'hwc'");
        }
        runtime::Images images;
        images.data = static_cast<const float*>(image.data());
        images.batch = batched ? image.shape(0) : 1;
        images.layout = lay;
        images.prescaled = prescaled;
        if (lay == RUNTIME_LAYOUT_CHW) {
            images.channels = image.shape(first);
            images.height = image.shape(first + 1);
            images.width = image.shape(first + 2);
        } else {
            images.height = image.shape(first);
            images.width = image.shape(first + 1);
            images.channels = image.shape(first + 2);
        }

        py::array_t<float> heat, out;
        float* heat_ptr = nullptr;
        float* out_ptr = nullptr;
        std::size_t heat_size = 0, out_size = 0;
        const py::ssize_t b = images.batch, h = info_.height, w = info_.width, oc = info_.output_channels;
        const bool shape_ok = images.height == h && images.width == w;
        // Allocate only for a size the graph takes; libruntime reports any mismatch.
        if (heatmap && shape_ok) {
            heat = batched ? py::array_t<float>({b, h, w}) : py::array_t<float>({h, w});
            heat_ptr = heat.mutable_data();
            heat_size = std::size_t(heat.size());
        }
        if (raw && shape_ok) {
            out = batched ? py::array_t<float>({b, oc, h, w}) : py::array_t<float>({oc, h, w});
            out_ptr = out.mutable_data();
            out_size = std::size_t(out.size());
        }
        if (!shape_ok) {
            // Let libruntime name the mismatch; the buffers are never touched.
            static float dummy = 0.0f;
            heat_ptr = heatmap ? &dummy : nullptr;
            out_ptr = raw ? &dummy : nullptr;
        }
        try {
            py::gil_scoped_release release;
            session_->run(images, heat_ptr, heat_size, out_ptr, out_size);
        } catch (const runtime::Error& e) {
            raise(e.status(), e.message());
        }
        if (heatmap && raw) return py::make_tuple(heat, out);
        return heatmap ? py::object(heat) : py::object(out);
    }

private:
    std::optional<runtime::Session> session_;
    runtime_session_info info_{};
};

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "libruntime bindings: run exported bundles through the C++ runtime (import via runtime._backends.native)";
    m.attr("__version__") = runtime::version();
    m.def("version", &runtime::version, "libruntime version");
    m.def("onnxruntime_version", [] {
        try {
            return runtime::onnxruntime_version();
        } catch (const runtime::Error& e) {
            raise(e.status(), e.message());
        }
    }, "version of the ONNX Runtime library libruntime runs on");
    m.def("has_backend", [](const std::string& name) {
        const runtime_backend backend = parse_enum<runtime_backend>(
            name, "backend", {{"auto", RUNTIME_BACKEND_AUTO}, {"onnxruntime", RUNTIME_BACKEND_ONNXRUNTIME},
                              {"openvino", RUNTIME_BACKEND_OPENVINO}});
        return runtime::has_backend(backend);
    }, py::arg("backend"), "whether libruntime can use a backend ('onnxruntime' or 'openvino')");

    py::class_<PySession>(m, "Session")
        .def(py::init<const py::object&, const std::string&, const std::string&, const std::optional<std::string>&,
                      const std::optional<std::string>&, int, bool, bool, const std::string&>(),
             py::arg("model"), py::kw_only(), py::arg("backend") = "auto", py::arg("device") = "cpu",
             py::arg("precision") = py::none(), py::arg("layer") = py::none(), py::arg("threads") = 0,
             py::arg("verify") = true, py::arg("spinning") = true, py::arg("name") = "<memory>",
             "Load a bundle directory or .onnx file (path), or a lone graph's bytes, exported by export.build.")
        .def_property_readonly("info", &PySession::info)
        .def_property_readonly("input_shape", &PySession::input_shape)
        .def_property_readonly("output_shape", &PySession::output_shape)
        .def("run", &PySession::run, py::arg("image"), py::kw_only(), py::arg("layout") = "auto",
             py::arg("heatmap") = true, py::arg("raw") = false, py::arg("prescaled") = false,
             "Run float32 0..255 image(s); returns the heatmap (H, W) or (B, H, W), the raw output, or both.\n"
             "prescaled=True: the array already is the graph's scaled NCHW input (no checks, no scaling).");
}
