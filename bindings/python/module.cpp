// runtime._native: the pybind11 shim over libruntime's C++ wrapper.
//
// Zero-copy both ways: a float32 C-contiguous numpy image is read in place and
// the results are written by libruntime straight into numpy arrays allocated
// here. The GIL is released while the engine runs, so Python threads can share
// one Session. Statuses become the SDK's error classes (runtime._errors).
// Layouts are never guessed here: the caller says "chw" (default) or "hwc"
// (the Python runtime guesses layouts in one place, runtime._imageio).
//
// Import it through runtime._backends.native, which first loads the onnxruntime
// wheel's libonnxruntime.so.<version> (the name libruntime needs is .so.1).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

const char* dtype_name(int32_t dtype) {
    switch (dtype) {
        case RUNTIME_DTYPE_FLOAT16: return "float16";
        case RUNTIME_DTYPE_UINT8: return "uint8";
        case RUNTIME_DTYPE_INT8: return "int8";
        case RUNTIME_DTYPE_INT64: return "int64";
        default: return "float32";
    }
}

py::list tensor_list(const std::vector<runtime::TensorInfo>& tensors) {
    py::list out;
    for (const runtime::TensorInfo& t : tensors) {
        py::dict d;
        d["name"] = t.name;
        d["role"] = t.role;
        d["dtype"] = dtype_name(t.dtype);
        py::list shape;  // a dynamic axis is None
        for (int64_t dim : t.shape) shape.append(dim < 0 ? py::object(py::none()) : py::object(py::int_(dim)));
        d["shape"] = shape;
        out.append(d);
    }
    return out;
}

py::dict transform_dict(const runtime_transform& t) {
    py::dict d;
    d["scale_x"] = t.scale_x;
    d["scale_y"] = t.scale_y;
    d["pad_x"] = t.pad_x;
    d["pad_y"] = t.pad_y;
    d["resized_width"] = t.resized_width;
    d["resized_height"] = t.resized_height;
    d["source_width"] = t.source_width;
    d["source_height"] = t.source_height;
    return d;
}

class PySession {
public:
    // path: a bundle directory or .onnx file (str / os.PathLike), or the bytes of a lone graph.
    PySession(const py::object& model, const std::string& backend, const std::string& device,
              const std::optional<std::string>& precision, const std::optional<std::string>& layer, int threads,
              bool verify, bool spinning, const std::string& name) {
        const runtime::Options options = make_options(backend, device, precision, layer, threads, verify, spinning);
        try {
            if (py::isinstance<py::bytes>(model)) {
                const std::string_view bytes = model.cast<std::string_view>();  // no copy; the GIL keeps it alive
                py::gil_scoped_release release;  // loading a graph can take a while
                session_.emplace(runtime::Session::from_memory(bytes.data(), bytes.size(), name, options));
            } else {
                const std::string path = py::str(py::module_::import("os").attr("fspath")(model));
                py::gil_scoped_release release;
                session_.emplace(path, options);
            }
            info_ = session_->info();
            inputs_ = session_->inputs();
            outputs_ = session_->outputs();
            keypoint_names_ = session_->keypoint_names();
            color_order_ = session_->color_order() == RUNTIME_COLOR_ORDER_BGR ? "bgr" : "rgb";
        } catch (const runtime::Error& e) {
            raise(e.status(), e.message());
        }
    }

    py::dict info() const {
        py::dict d;
        d["family"] = info_.family;
        d["variant"] = info_.variant;
        d["graph_file"] = info_.graph_file;
        d["layer"] = info_.layer;
        d["precision"] = info_.precision;
        d["postprocess"] = info_.postprocess;
        d["backend"] = info_.backend == RUNTIME_BACKEND_OPENVINO ? "openvino" : "onnxruntime";
        d["device"] = info_.device == RUNTIME_DEVICE_GPU ? "gpu" : "cpu";
        d["input_count"] = info_.input_count;
        d["output_count"] = info_.output_count;
        d["channels"] = info_.channels;
        d["height"] = info_.height;
        d["width"] = info_.width;
        d["resize"] = info_.resize == RUNTIME_RESIZE_LETTERBOX ? "letterbox" : "exact";
        d["source_range"] = py::make_tuple(info_.source_low, info_.source_high);
        d["min_size"] = info_.min_size;
        d["color_order"] = color_order_;  // preprocess.color_order: "rgb" or "bgr" (PNG/JPEG plane of channel 0)
        d["has_heatmap"] = bool(info_.has_heatmap);
        d["heatmap_output"] = info_.has_heatmap ? py::object(py::str(outputs_[info_.heatmap_output].name)) : py::none();
        d["heatmap_channel"] = info_.heatmap_channel;
        d["heatmap_threshold"] = info_.heatmap_threshold;
        d["has_keypoints"] = bool(info_.has_keypoints);
        d["keypoint_names"] = keypoint_names_;
        d["keypoint_threshold"] = info_.keypoint_threshold;
        return d;
    }

    py::list inputs() const { return tensor_list(inputs_); }
    py::list outputs() const { return tensor_list(outputs_); }

    // Every output: ({name: (B, ...) float32}, transform); a single image gets a batch axis of 1.
    py::tuple run(const py::array& image, const std::string& layout, bool prescaled) {
        const runtime::Images images = view(image, layout, prescaled);
        std::vector<py::array_t<float>> arrays;
        std::vector<runtime_tensor_buffer> buffers;
        for (const runtime::TensorInfo& t : outputs_) {
            std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
            if (shape[0] < 0) shape[0] = images.batch;
            arrays.emplace_back(shape);
            buffers.push_back({arrays.back().mutable_data(), std::size_t(arrays.back().size()), 0});
        }
        runtime_transform transform{};
        try {
            py::gil_scoped_release release;
            transform = session_->run(images, buffers);
        } catch (const runtime::Error& e) {
            raise(e.status(), e.message());
        }
        py::dict tensors;
        for (std::size_t i = 0; i < outputs_.size(); ++i) tensors[py::str(outputs_[i].name)] = arrays[i];
        return py::make_tuple(tensors, transform_dict(transform));
    }

    // Heatmap families: ((B, H, W) float32 clipped to the manifest's range, transform).
    py::tuple run_heatmap(const py::array& image, const std::string& layout) {
        const runtime::Images images = view(image, layout, false);
        if (!info_.has_heatmap) {
            // libruntime names the reason (another kind, or the base layer's logits).
            try {
                session_->heatmap(images, nullptr, 0);
            } catch (const runtime::Error& e) {
                raise(e.status(), e.message());
            }
        }
        const std::vector<int64_t>& shape = outputs_[info_.heatmap_output].shape;
        py::array_t<float> heat({py::ssize_t(images.batch), py::ssize_t(shape[2]), py::ssize_t(shape[3])});
        runtime_transform transform{};
        try {
            float* data = heat.mutable_data();
            const std::size_t size = std::size_t(heat.size());
            py::gil_scoped_release release;
            session_->heatmap(images, data, size, &transform);
        } catch (const runtime::Error& e) {
            raise(e.status(), e.message());
        }
        return py::make_tuple(heat, transform_dict(transform));
    }

    // Keypoints families: ({"points": (B, K, 2) float64 x, y in source pixels, "scores": (B, K) float64,
    // "angle": (B,) float64 degrees or None}, transform). Points below the threshold are included.
    py::tuple run_keypoints(const py::array& image, const std::string& layout) {
        const runtime::Images images = view(image, layout, false);
        std::vector<runtime_keypoints> raw(std::size_t(images.batch));
        try {
            py::gil_scoped_release release;
            session_->run_keypoints(images, raw.data(), raw.size());
        } catch (const runtime::Error& e) {
            raise(e.status(), e.message());
        }
        const py::ssize_t batch = py::ssize_t(raw.size()), count = py::ssize_t(keypoint_names_.size());
        py::array_t<double> points({batch, count, py::ssize_t(2)}), scores({batch, count});
        auto p = points.mutable_unchecked<3>();
        auto s = scores.mutable_unchecked<2>();
        for (py::ssize_t b = 0; b < batch; ++b) {
            for (py::ssize_t k = 0; k < count; ++k) {
                p(b, k, 0) = raw[b].x[k];
                p(b, k, 1) = raw[b].y[k];
                s(b, k) = raw[b].score[k];
            }
        }
        py::object angle = py::none();
        if (batch > 0 && raw[0].has_angle) {
            py::array_t<double> angles(batch);
            for (py::ssize_t b = 0; b < batch; ++b) angles.mutable_at(b) = raw[b].angle;
            angle = angles;
        }
        py::dict result;
        result["points"] = points;
        result["scores"] = scores;
        result["angle"] = angle;
        return py::make_tuple(result, transform_dict(raw.empty() ? runtime_transform{} : raw[0].transform));
    }

private:
    // image: float32, C-contiguous, (C,H,W) / (H,W,C) / (B,C,H,W) / (B,H,W,C) as layout says.
    static runtime::Images view(const py::array& image, const std::string& layout, bool prescaled) {
        if (!image.dtype().is(py::dtype::of<float>())) {
            raise(RUNTIME_ERR_INVALID_INPUT, "expected a float32 array, got dtype " + std::string(py::str(image.dtype())) +
                                                 " (shape " + shape_text(image) + "); convert with array.astype(np.float32)");
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
        runtime::Images images;
        if (layout == "chw") {
            images.layout = RUNTIME_LAYOUT_CHW;
        } else if (layout == "hwc") {
            images.layout = RUNTIME_LAYOUT_HWC;
        } else {
            raise(RUNTIME_ERR_INVALID_ARGUMENT, "layout '" + layout + "' is not one of 'chw', 'hwc'");
        }
        const py::ssize_t first = ndim == 4 ? 1 : 0;
        images.data = static_cast<const float*>(image.data());
        images.batch = ndim == 4 ? image.shape(0) : 1;
        images.prescaled = prescaled;
        const bool chw = images.layout == RUNTIME_LAYOUT_CHW;
        images.channels = image.shape(chw ? first : first + 2);
        images.height = image.shape(chw ? first + 1 : first);
        images.width = image.shape(chw ? first + 2 : first + 1);
        return images;
    }

    std::optional<runtime::Session> session_;
    runtime_session_info info_{};
    std::vector<runtime::TensorInfo> inputs_, outputs_;
    std::vector<std::string> keypoint_names_;  // empty unless the kind is keypoints
    std::string color_order_ = "rgb";
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
        .def_property_readonly("info", &PySession::info, "facts about the loaded graph (a dict)")
        .def_property_readonly("inputs", &PySession::inputs,
                               "the graph's inputs: [{name, role, dtype, shape}] (None: the dynamic batch axis)")
        .def_property_readonly("outputs", &PySession::outputs,
                               "the graph's outputs: [{name, role, dtype, shape}] (None: the dynamic batch axis)")
        .def("run", &PySession::run, py::arg("image"), py::kw_only(), py::arg("layout") = "chw",
             py::arg("prescaled") = false,
             "Run float32 image(s) in the manifest's source range: (C, H, W) or (B, C, H, W) for layout 'chw',\n"
             "(H, W, C) or (B, H, W, C) for 'hwc'. Returns ({output name: float32 array}, transform dict);\n"
             "every array has the batch axis, also for a single 3-D image (batch 1). The transform maps\n"
             "graph-input pixels to the source image: input = source * scale + pad.\n"
             "prescaled=True: the array already is the graph's scaled NCHW input (no checks, no pre-processing).")
        .def("run_heatmap", &PySession::run_heatmap, py::arg("image"), py::kw_only(), py::arg("layout") = "chw",
             "Heatmap families: ((B, H, W) float32 heatmap clipped to the manifest's range, transform dict);\n"
             "the batch axis is there for a single image too.")
        .def("run_keypoints", &PySession::run_keypoints, py::arg("image"), py::kw_only(), py::arg("layout") = "chw",
             "Keypoints families (full graph): ({'points': (B, K, 2) float64 x, y in source-image pixels,\n"
             "'scores': (B, K) float64, 'angle': (B,) float64 degrees or None}, transform dict); points in\n"
             "info['keypoint_names'] order, every point whatever its score (compare with\n"
             "info['keypoint_threshold']). The batch axis is there for a single image too.");
}
