// Manifest schema version 2: typed parsing with the rules of runtime/_manifest.py
// (same checks, same messages), sha256 and ONNX wire-format scanning.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "internal.hpp"

namespace runtime::detail {
namespace {

using nlohmann::json;

constexpr int64_t kSchemaVersion = 2;
constexpr std::size_t kMaxRank = RUNTIME_MAX_RANK;
// Deepest JSON nesting read, about where Python's json module stops (its
// recursion limit); a manifest is 5 levels deep. json::dump(), which the
// messages below use, recurses once per level: 100000 nested brackets (200 KB)
// in a field overflowed the stack (found with fuzz_manifest; `make fuzz` replays it).
constexpr int kMaxDepth = 1000;
const std::vector<std::string> kLayers = {"base", "patch", "full"};
const std::vector<std::string> kPrecisions = {"fp32", "fp16", "int8"};
const std::vector<std::string> kDtypes = {"float32", "float16", "uint8", "int8", "int64"};
const std::vector<std::string> kResize = {"exact", "letterbox"};
const std::vector<std::string> kLayouts = {"CHW", "HWC"};
const std::vector<std::string> kColorOrders = {"rgb", "bgr"};  // runtime._imageio.COLOR_ORDERS
const std::vector<std::string> kKinds = {"heatmap", "keypoints"};

[[noreturn]] void malformed(const std::string& message) { fail(RUNTIME_ERR_MODEL_LOAD, message); }

// The string patterns of the schema, as predicates (and their text for messages).
struct Pattern {
    const char* text;
    bool (*match)(const std::string&);
};
bool lower_word(const std::string& s) {  // ^[a-z][a-z0-9_]*$
    if (s.empty() || !(s[0] >= 'a' && s[0] <= 'z')) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}
bool tensor_name(const std::string& s) {  // ^[A-Za-z_][A-Za-z0-9_.:/-]*$
    auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
    if (s.empty() || !alpha(s[0])) return false;
    return std::all_of(s.begin(), s.end(), [&](char c) {
        return alpha(c) || (c >= '0' && c <= '9') || c == '.' || c == ':' || c == '/' || c == '-';
    });
}
bool hex64(const std::string& s) {  // ^[0-9a-f]{64}$
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}
bool onnx_file(const std::string& s) {  // ^[^/\\]+\.onnx$: a plain file name inside the bundle
    return s.size() > 5 && s.compare(s.size() - 5, 5, ".onnx") == 0 && s.find_first_of("/\\") == std::string::npos;
}
const Pattern kKey{"^[a-z][a-z0-9_]*$", lower_word};
const Pattern kName{"^[A-Za-z_][A-Za-z0-9_.:/-]*$", tensor_name};
const Pattern kSha256{"^[0-9a-f]{64}$", hex64};
const Pattern kFile{"a plain file name inside the bundle ending in .onnx", onnx_file};

std::string list_text(const std::vector<std::string>& items) {
    std::string text = "[";
    for (std::size_t i = 0; i < items.size(); ++i) text += (i ? ", '" : "'") + items[i] + "'";
    return text + "]";
}

std::string list_text(const std::vector<int64_t>& items) {
    std::string text = "[";
    for (std::size_t i = 0; i < items.size(); ++i) text += (i ? ", " : "") + std::to_string(items[i]);
    return text + "]";
}

std::string number_text(double value) {
    std::ostringstream text;
    text << value;
    return text.str();
}

bool is_number(const json& v) { return v.is_number() && std::isfinite(v.get<double>()); }

// Typed access to one JSON object; every failure names the field's path and what was expected.
class Reader {
public:
    Reader(const json& data, std::string where) : data_(data), where_(std::move(where)) {
        if (!data.is_object()) malformed(where_ + ": expected a JSON object, got " + data.type_name());
    }

    const std::string& where() const { return where_; }
    bool has(const char* key) const { return data_.contains(key); }

    [[noreturn]] void fail_field(const char* key, const std::string& expected) const {
        std::string value = data_.contains(key) ? data_.at(key).dump() : "<missing>";
        if (value.size() > 80) {
            // Cut on a character boundary: the message is UTF-8 text for hosts and the
            // Python shim, and a cut inside a multi-byte character was not (found with
            // fuzz_manifest; bindings/fuzz/corpus/manifest/regression_utf8_cut.json).
            std::size_t cut = 77;
            while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
            value = value.substr(0, cut) + "...";
        }
        malformed(where_ + "." + key + " is " + value + "; expected " + expected);
    }

    const json& raw(const char* key) const {
        if (!data_.contains(key)) malformed(where_ + ": missing field '" + key + "'");
        return data_.at(key);
    }

    Reader child(const char* key) const { return Reader(raw(key), where_ + "." + key); }

    std::string string(const char* key, const Pattern* pattern = nullptr,
                       const std::vector<std::string>& choices = {}) const {
        const json& v = raw(key);
        if (!v.is_string() || v.get<std::string>().empty()) fail_field(key, "a non-empty string");
        const std::string s = v.get<std::string>();
        if (!choices.empty() && std::find(choices.begin(), choices.end(), s) == choices.end()) {
            fail_field(key, "one of " + list_text(choices));
        }
        if (pattern != nullptr && !pattern->match(s)) {
            fail_field(key, pattern->text[0] == '^' ? std::string("a string matching ") + pattern->text : pattern->text);
        }
        return s;
    }

    int64_t integer(const char* key, int64_t minimum) const {
        const json& v = raw(key);
        if (!v.is_number_integer() || v.get<int64_t>() < minimum) {
            fail_field(key, "an integer >= " + std::to_string(minimum));
        }
        return v.get<int64_t>();
    }

    double number(const char* key) const {
        const json& v = raw(key);
        if (!is_number(v)) fail_field(key, "a finite number");
        return v.get<double>();
    }

    double number_above(const char* key, double above) const {
        const double v = number(key);
        if (!(v > above)) fail_field(key, "a number above " + number_text(above));
        return v;
    }

    double number_in(const char* key, double low, double high) const {
        const double v = number(key);
        if (v < low || v > high) fail_field(key, "a number in " + number_text(low) + ".." + number_text(high));
        return v;
    }

    bool boolean(const char* key) const {
        const json& v = raw(key);
        if (!v.is_boolean()) fail_field(key, "true or false");
        return v.get<bool>();
    }

    std::vector<int64_t> integers(const char* key, int64_t minimum, bool nonempty = true) const {
        const json& v = raw(key);
        bool ok = v.is_array() && (!nonempty || !v.empty());
        for (std::size_t i = 0; ok && i < v.size(); ++i) ok = v[i].is_number_integer() && v[i].get<int64_t>() >= minimum;
        if (!ok) {
            fail_field(key, std::string("a ") + (nonempty ? "non-empty " : "") + "list of integers >= " +
                                std::to_string(minimum));
        }
        return v.get<std::vector<int64_t>>();
    }

    std::vector<std::string> strings(const char* key, const std::vector<std::string>& choices = {}) const {
        const json& v = raw(key);
        bool ok = v.is_array() && !v.empty();
        for (std::size_t i = 0; ok && i < v.size(); ++i) ok = v[i].is_string() && !v[i].get<std::string>().empty();
        if (!ok) fail_field(key, "a non-empty list of non-empty strings");
        std::vector<std::string> out = v.get<std::vector<std::string>>();
        for (const std::string& s : out) {
            if (!choices.empty() && std::find(choices.begin(), choices.end(), s) == choices.end()) {
                fail_field(key, "a list of " + list_text(choices));
            }
        }
        return out;
    }

    std::pair<double, double> range(const char* key) const {
        const json& v = raw(key);
        if (!v.is_array() || v.size() != 2 || !is_number(v[0]) || !is_number(v[1]) ||
            !(v[0].get<double>() < v[1].get<double>())) {
            fail_field(key, "[low, high] with low < high");
        }
        return {v[0].get<double>(), v[1].get<double>()};
    }

private:
    const json& data_;
    std::string where_;
};

TensorSpec parse_tensor(const json& data, const std::string& where) {
    const Reader r(data, where);
    const json& shape = r.raw("shape");
    bool ok = shape.is_array() && !shape.empty() && shape.size() <= kMaxRank;
    for (std::size_t i = 0; ok && i < shape.size(); ++i) {
        const json& d = shape[i];
        ok = (d.is_number_integer() && d.get<int64_t>() >= 1) || (d.is_string() && !d.get<std::string>().empty());
    }
    if (!ok) {
        r.fail_field("shape", "a list of 1.." + std::to_string(kMaxRank) + " dimensions (positive integers or axis names)");
    }
    TensorSpec spec;
    for (const json& d : shape) spec.shape.push_back(d.is_number_integer() ? d.get<int64_t>() : int64_t{-1});
    spec.name = r.string("name", &kName);
    spec.dtype = r.string("dtype", nullptr, kDtypes);
    spec.role = r.string("role", &kKey);
    return spec;
}

Preprocess parse_preprocess(const json& data, const std::string& where) {
    const Reader r(data, where);
    Preprocess pre;
    r.string("layout", nullptr, {"NCHW"});
    pre.resize = r.string("resize", nullptr, kResize) == "letterbox" ? Resize::letterbox : Resize::exact;
    pre.read_channels = r.integers("read_channels", 0);
    pre.accepted_channels = r.integers("accepted_channels", 1);
    pre.channel_names = r.strings("channel_names");
    pre.append_mask = r.boolean("append_mask");
    std::tie(pre.source_low, pre.source_high) = r.range("source_range");
    const bool has_pad = r.has("pad_value");
    if (has_pad) pre.pad_value = r.number("pad_value");
    if (pre.resize == Resize::letterbox && !has_pad) malformed(where + ": a letterbox resize needs pad_value");
    if (has_pad && !(pre.source_low <= pre.pad_value && pre.pad_value <= pre.source_high)) {
        r.fail_field("pad_value", "a value in the source range [" + number_text(pre.source_low) + ", " +
                                      number_text(pre.source_high) + "]");
    }
    if (pre.append_mask && pre.resize != Resize::letterbox) {
        r.fail_field("append_mask", "false unless resize is letterbox (the mask marks letterbox padding)");
    }
    if (int64_t(pre.channel_names.size()) != pre.channels()) {
        r.fail_field("channel_names", std::to_string(pre.channels()) + " names (read_channels, then the mask)");
    }
    const int64_t fewest = *std::min_element(pre.accepted_channels.begin(), pre.accepted_channels.end());
    if (*std::max_element(pre.read_channels.begin(), pre.read_channels.end()) >= fewest) {
        r.fail_field("read_channels", "indices below " + std::to_string(fewest) +
                                          ", the fewest channels an image may have (accepted_channels " +
                                          list_text(pre.accepted_channels) + ")");
    }
    pre.height = r.integer("height", 1);
    pre.width = r.integer("width", 1);
    // Optional (default 1, no limit beyond one pixel): bundles written before the field stay valid.
    if (r.has("min_size")) pre.min_size = r.integer("min_size", 1);
    const int64_t smaller = std::min(pre.height, pre.width);
    if (pre.min_size > smaller) {
        r.fail_field("min_size", "an integer in 1.." + std::to_string(smaller) + " (an image of the graph's own size " +
                                     std::to_string(pre.height) + "x" + std::to_string(pre.width) +
                                     " must be accepted)");
    }
    // Optional (default "rgb", the order bundles written before the field were read in).
    if (r.has("color_order")) {
        pre.color_order = r.string("color_order", nullptr, kColorOrders) == "bgr" ? ColorOrder::bgr : ColorOrder::rgb;
    }
    pre.accepted_layouts = r.strings("accepted_layouts", kLayouts);
    pre.scale = r.number_above("scale", 0.0);
    return pre;
}

Postprocess parse_postprocess(const json& data, const std::string& where) {
    const Reader r(data, where);
    if (r.string("kind", nullptr, kKinds) == "heatmap") {
        HeatmapPost post;
        if (r.has("zero_channels")) post.zero_channels = r.integers("zero_channels", 0, false);
        post.output = r.string("output", &kName);
        post.channel = r.integer("channel", 0);
        std::tie(post.low, post.high) = r.range("range");
        post.threshold = r.number_in("threshold", 0.0, 1.0);
        return post;
    }
    KeypointsPost post;
    if (r.has("angle_output")) post.angle_output = r.string("angle_output", &kName);
    if (r.has("score_threshold")) post.score_threshold = r.number_in("score_threshold", 0.0, 1.0);
    post.points = r.strings("points");
    post.points_output = r.string("points_output", &kName);
    post.scores_output = r.string("scores_output", &kName);
    return post;
}

std::vector<std::string> output_names(const Postprocess& post) {
    if (const auto* heat = std::get_if<HeatmapPost>(&post)) return {heat->output};
    const auto& kp = std::get<KeypointsPost>(post);
    std::vector<std::string> names = {kp.points_output, kp.scores_output};
    if (!kp.angle_output.empty()) names.push_back(kp.angle_output);
    return names;
}

GraphEntry parse_graph(const json& data, const std::string& where, bool embedded) {
    const Reader r(data, where);
    GraphEntry entry;
    for (const char* kind : {"inputs", "outputs"}) {
        const json& items = r.raw(kind);
        if (!items.is_array() || items.empty()) r.fail_field(kind, "a non-empty list of tensors");
        std::vector<TensorSpec>& tensors = std::string(kind) == "inputs" ? entry.inputs : entry.outputs;
        for (std::size_t i = 0; i < items.size(); ++i) {
            tensors.push_back(parse_tensor(items[i], where + "." + kind + "[" + std::to_string(i) + "]"));
            for (std::size_t j = 0; j < i; ++j) {
                if (tensors[j].name == tensors[i].name) r.fail_field(kind, "tensors with distinct names");
            }
        }
    }
    if (r.has("float_nodes")) {
        const json& floats = r.raw("float_nodes");
        bool ok = floats.is_array();
        for (std::size_t i = 0; ok && i < floats.size(); ++i) ok = floats[i].is_string();
        if (!ok) r.fail_field("float_nodes", "a list of node names");
    }
    if (!embedded) {
        entry.sha256 = r.string("sha256", &kSha256);
        entry.bytes = r.integer("bytes", 1);
    }
    entry.file = r.string("file", &kFile);
    entry.layer = r.string("layer", nullptr, kLayers);
    entry.precision = r.string("precision", nullptr, kPrecisions);
    entry.mode = r.string("mode");
    entry.opset = r.integer("opset", 7);
    return entry;
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string text = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        text += (i ? ", " : "") + (shape[i] < 0 ? std::string("N") : std::to_string(shape[i]));
    }
    return text + "]";
}

const TensorSpec& require_output(const GraphEntry& entry, const std::string& name) {
    if (const TensorSpec* spec = entry.find_output(name)) return *spec;
    std::vector<std::string> names;
    for (const TensorSpec& t : entry.outputs) names.push_back(t.name);
    malformed("graph " + entry.file + " has no output '" + name + "'; it has " + list_text(names));
}

const TensorSpec& require_image(const GraphEntry& entry) {
    if (const TensorSpec* spec = entry.image_input()) return *spec;
    malformed("graph " + entry.file + " has no input with role 'image'");
}

// A full-image graph must fit the pre- and post-processing the manifest declares.
void check_entry(const Manifest& manifest, const GraphEntry& entry, const std::string& source) {
    if (entry.layer != "full") return;
    const TensorSpec& image = require_image(entry);
    const Preprocess& pre = manifest.preprocess;
    if (image.shape.size() != 4 || image.shape[1] != pre.channels() || image.shape[2] != pre.height ||
        image.shape[3] != pre.width || image.dtype != "float32") {
        malformed(source + ": graph " + entry.file + " image input '" + image.name + "' is " + shape_text(image.shape) +
                  " " + image.dtype + "; the preprocess makes float32 (N, " + std::to_string(pre.channels()) + ", " +
                  std::to_string(pre.height) + ", " + std::to_string(pre.width) + ")");
    }
    for (const std::string& name : output_names(manifest.postprocess)) require_output(entry, name);
    if (const auto* heat = std::get_if<HeatmapPost>(&manifest.postprocess)) {
        const TensorSpec& out = require_output(entry, heat->output);
        const int64_t channels = out.shape.size() == 4 ? out.shape[1] : -1;
        if (channels < 0 || heat->channel >= channels) {
            malformed(source + ": postprocess.channel " + std::to_string(heat->channel) + " is outside output '" +
                      out.name + "' of shape " + shape_text(out.shape) + "; expected (N, C, H, W) with channel < C");
        }
        for (int64_t c : heat->zero_channels) {
            if (c >= channels || c == heat->channel) {
                malformed(source + ": postprocess.zero_channels " + list_text(heat->zero_channels) +
                          " must be channels of '" + out.name + "' other than the heatmap's");
            }
        }
    } else {
        const auto& kp = std::get<KeypointsPost>(manifest.postprocess);
        const TensorSpec& points = require_output(entry, kp.points_output);
        const int64_t k = int64_t(kp.points.size());
        if (points.shape.size() != 3 || points.shape[1] != k || points.shape[2] != 2) {
            malformed(source + ": output '" + points.name + "' is " + shape_text(points.shape) + "; expected (N, " +
                      std::to_string(k) + ", 2) for points " + list_text(kp.points));
        }
        const TensorSpec& scores = require_output(entry, kp.scores_output);
        if (scores.shape.size() != 2 || scores.shape[1] != k) {
            malformed(source + ": output '" + scores.name + "' is " + shape_text(scores.shape) + "; expected (N, " +
                      std::to_string(k) + "), one score per point " + list_text(kp.points));
        }
        if (!kp.angle_output.empty()) {
            const TensorSpec& angle = require_output(entry, kp.angle_output);
            if (angle.shape.size() != 1 && !(angle.shape.size() == 2 && angle.shape[1] == 1)) {
                malformed(source + ": output '" + angle.name + "' is " + shape_text(angle.shape) +
                          "; expected (N,) or (N, 1), one angle per image");
            }
        }
    }
}

}  // namespace

const TensorSpec* GraphEntry::find_output(const std::string& name) const {
    for (const TensorSpec& t : outputs) {
        if (t.name == name) return &t;
    }
    return nullptr;
}

const TensorSpec* GraphEntry::image_input() const {
    for (const TensorSpec& t : inputs) {
        if (t.role == "image") return &t;
    }
    return nullptr;
}

const char* kind_name(const Postprocess& post) {
    return std::holds_alternative<HeatmapPost>(post) ? "heatmap" : "keypoints";
}

Manifest parse_manifest(const std::string& text, const std::string& source, bool embedded) {
    json data;
    try {
        data = json::parse(text, [&](int depth, json::parse_event_t, json&) {
            if (depth > kMaxDepth) {
                malformed("cannot read " + source + ": JSON nested deeper than " + std::to_string(kMaxDepth) +
                          " levels; expected a manifest (is it the right file?)");
            }
            return true;
        });
    } catch (const json::exception& exc) {
        // nlohmann quotes the bytes it last read, which may be invalid UTF-8:
        // hosts (and the Python shim) need a message that is text.
        std::string what = exc.what();
        std::replace_if(what.begin(), what.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; }, '?');
        malformed("cannot read " + source + ": " + what);
    }
    const Reader r(data, source);
    if (r.has("schema_version")) {
        const json& version = data["schema_version"];
        // The JSON integer 2, as runtime/_manifest.py: true or 2.0 is a broken writer, not a version.
        if (!version.is_number_integer()) {
            malformed(source + ".schema_version is " + version.dump() + "; expected the integer " +
                      std::to_string(kSchemaVersion));
        }
        if (version.get<int64_t>() != kSchemaVersion) {
            malformed(source + ": schema_version " + version.dump() + " is not supported: this runtime reads version " +
                      std::to_string(kSchemaVersion) + "; re-export the bundle with this SDK "
                      "(python -m export.build --checkpoint CKPT --out DIR)");
        }
    }
    std::vector<std::string> required = {"schema_version", "family", "variant", "preprocess", "postprocess",
                                         "checkpoint", "producer"};
    for (const char* key : embedded ? std::vector<const char*>{"graph"} : std::vector<const char*>{"graphs", "default_graph"}) {
        required.push_back(key);
    }
    std::vector<std::string> missing;
    for (const std::string& key : required) {
        if (!data.contains(key)) missing.push_back(key);
    }
    if (!missing.empty()) malformed(source + ": missing fields " + list_text(missing));
    r.child("checkpoint");  // objects; their content is informative
    r.child("producer");
    if (r.has("tiling") && !data["tiling"].is_object()) r.fail_field("tiling", "an object");

    Manifest manifest;
    manifest.preprocess = parse_preprocess(data["preprocess"], source + ".preprocess");
    manifest.postprocess = parse_postprocess(data["postprocess"], source + ".postprocess");
    if (embedded) {
        manifest.graphs.push_back(parse_graph(data["graph"], source + ".graph", true));
        manifest.default_graph = manifest.graphs[0].file;
    } else {
        const json& items = data["graphs"];
        if (!items.is_array() || items.empty()) r.fail_field("graphs", "a non-empty list of graph entries");
        for (std::size_t i = 0; i < items.size(); ++i) {
            manifest.graphs.push_back(parse_graph(items[i], source + ".graphs[" + std::to_string(i) + "]", false));
        }
        manifest.default_graph = r.string("default_graph", &kFile);
    }
    std::vector<std::string> files;
    for (const GraphEntry& g : manifest.graphs) files.push_back(g.file);
    if (std::find(files.begin(), files.end(), manifest.default_graph) == files.end()) {
        r.fail_field("default_graph", "one of the graphs' files " + list_text(files));
    }
    std::vector<std::string> sorted = files;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
        malformed(source + ": graph files " + list_text(files) + " are not distinct");
    }
    manifest.family = r.string("family", &kKey);
    manifest.variant = r.string("variant");
    for (const GraphEntry& g : manifest.graphs) check_entry(manifest, g, source);
    return manifest;
}

void check_runnable(const Manifest& manifest, const GraphEntry& entry, const std::string& source) {
    const std::string graph = source + ": graph " + entry.file;
    const TensorSpec& image = require_image(entry);
    if (entry.inputs.size() != 1) {
        std::string names;
        for (const TensorSpec& t : entry.inputs) names += (names.empty() ? "" : ", ") + t.name + " (" + t.role + ")";
        malformed(graph + " has inputs [" + names + "]; libruntime feeds one input, the image");
    }
    const int64_t channels = manifest.preprocess.channels();
    if (image.shape.size() != 4 || image.shape[1] != channels) {
        malformed(graph + " image input '" + image.name + "' is " + shape_text(image.shape) + "; the preprocess makes (N, " +
                  std::to_string(channels) + ", H, W)");
    }
    for (const auto* tensors : {&entry.inputs, &entry.outputs}) {
        for (const TensorSpec& t : *tensors) {
            const char* what = tensors == &entry.inputs ? "input" : "output";
            if (t.dtype != "float32") {
                malformed(graph + " " + what + " '" + t.name + "' is " + t.dtype +
                          "; libruntime feeds float32 inputs and reads float32 outputs");
            }
            for (std::size_t i = 1; i < t.shape.size(); ++i) {
                if (t.shape[i] < 0) {
                    malformed(graph + " " + what + " '" + t.name + "' has shape " + shape_text(t.shape) +
                              " with a dynamic axis " + std::to_string(i) +
                              "; libruntime needs every axis but the first (the batch) fixed");
                }
            }
        }
    }
}

std::string sha256_hex(const void* data, std::size_t size) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_Digest(data, size, digest, &length, EVP_sha256(), nullptr) != 1) {
        fail(RUNTIME_ERR_INTERNAL, "OpenSSL EVP_Digest(sha256) failed");
    }
    static const char hex[] = "0123456789abcdef";
    std::string text(2 * length, '0');
    for (unsigned int i = 0; i < length; ++i) {
        text[2 * i] = hex[digest[i] >> 4];
        text[2 * i + 1] = hex[digest[i] & 15];
    }
    return text;
}

namespace {

// Largest files read, as runtime/_manifest.py: manifest.json is a few KiB (the
// limit keeps a wrong file from being read into memory); protobuf cannot
// serialize a ModelProto of 2 GiB or more.
constexpr off_t kMaxManifestBytes = off_t{16} << 20;
constexpr off_t kMaxGraphBytes = off_t{2} << 30;

const char* file_kind(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

struct Fd {
    int fd;
    ~Fd() { ::close(fd); }
};

}  // namespace

std::vector<char> read_file(const std::string& path, const char* what) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer,
    // forever. fstat() of the open descriptor, not of the path (which can be
    // swapped in between), refuses FIFOs, sockets and devices (/dev/zero never
    // ends); the size is checked before a byte is read and exactly that many are read.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fail(RUNTIME_ERR_MODEL_LOAD, std::string("cannot open ") + what + " " + path + ": " + std::strerror(errno));
    }
    const Fd guard{fd};
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
        fail(RUNTIME_ERR_MODEL_LOAD, std::string("cannot read ") + what + " " + path + ": " + std::strerror(errno));
    }
    if (!S_ISREG(info.st_mode)) {
        fail(RUNTIME_ERR_MODEL_LOAD, std::string(what) + " " + path + " is " + file_kind(info.st_mode) +
                                         "; expected a regular file");
    }
    const off_t limit = std::strcmp(what, "manifest") == 0 ? kMaxManifestBytes : kMaxGraphBytes;
    if (info.st_size > limit) {
        fail(RUNTIME_ERR_MODEL_LOAD, std::string(what) + " " + path + " has " + std::to_string(info.st_size) +
                                         " bytes; at most " + std::to_string(limit) + " are read (is it the right file?)");
    }
    std::vector<char> bytes(static_cast<std::size_t>(info.st_size));
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fail(RUNTIME_ERR_MODEL_LOAD, std::string("cannot read ") + what + " " + path + ": " + std::strerror(errno));
        }
        if (n == 0) {
            fail(RUNTIME_ERR_MODEL_LOAD, std::string(what) + " " + path + " changed while it was read: " +
                                             std::to_string(done) + " of " + std::to_string(bytes.size()) + " bytes");
        }
        done += static_cast<std::size_t>(n);
    }
    return bytes;
}

namespace {

// A dozen lines of protobuf wire format instead of a dependency on protobuf.
class Wire {
public:
    Wire(const char* data, std::size_t size) : p_(reinterpret_cast<const unsigned char*>(data)), end_(p_ + size) {}
    bool done() const { return p_ >= end_; }
    uint64_t varint() {
        uint64_t value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (p_ >= end_) throw std::out_of_range("truncated varint");
            const unsigned char byte = *p_++;
            value |= uint64_t(byte & 0x7F) << shift;
            if (!(byte & 0x80)) return value;
        }
        throw std::out_of_range("varint too long");
    }
    void skip(std::size_t n) {
        if (n > std::size_t(end_ - p_)) throw std::out_of_range("truncated field");
        p_ += n;
    }
    std::pair<const char*, std::size_t> bytes() {
        const uint64_t n = varint();
        const char* start = reinterpret_cast<const char*>(p_);
        skip(n);
        return {start, std::size_t(n)};
    }
    // Skips one field of the given wire type; false when it is not a known type.
    bool skip_field(uint64_t wire_type) {
        switch (wire_type) {
            case 0: varint(); return true;
            case 1: skip(8); return true;
            case 2: bytes(); return true;
            case 5: skip(4); return true;
            default: return false;
        }
    }

private:
    const unsigned char* p_;
    const unsigned char* end_;
};

}  // namespace

OnnxFacts scan_onnx(const std::vector<char>& model, const std::string& source) {
    OnnxFacts facts;
    try {
        Wire wire(model.data(), model.size());
        while (!wire.done()) {
            const uint64_t key = wire.varint();
            const uint64_t field = key >> 3, type = key & 7;
            if (type == 2 && (field == 7 || field == 14)) {
                auto [data, size] = wire.bytes();
                if (field == 7 && facts.graph == nullptr) {
                    facts.graph = data;
                    facts.graph_size = size;
                } else if (field == 14) {  // StringStringEntryProto {1: key, 2: value}
                    Wire entry(data, size);
                    std::string k, v;
                    while (!entry.done()) {
                        const uint64_t ekey = entry.varint();
                        if ((ekey & 7) == 2 && ((ekey >> 3) == 1 || (ekey >> 3) == 2)) {
                            auto [d, n] = entry.bytes();
                            ((ekey >> 3) == 1 ? k : v).assign(d, n);
                        } else if (!entry.skip_field(ekey & 7)) {
                            throw std::out_of_range("unsupported wire type");
                        }
                    }
                    facts.metadata.emplace_back(std::move(k), std::move(v));
                }
            } else if (!wire.skip_field(type)) {
                throw std::out_of_range("unsupported wire type " + std::to_string(type));
            }
        }
    } catch (const std::out_of_range& exc) {
        fail(RUNTIME_ERR_MODEL_LOAD, source + " is not a valid ONNX model (" + exc.what() + ")");
    }
    if (facts.graph == nullptr) fail(RUNTIME_ERR_MODEL_LOAD, source + " is not a valid ONNX model (no graph)");
    return facts;
}

}  // namespace runtime::detail
