// Manifest parsing (the rules of runtime/_manifest.py), sha256 and ONNX wire-format scanning.
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "internal.hpp"

namespace runtime::detail {
namespace {

using nlohmann::json;

constexpr int64_t kSchemaVersion = 1;
const char* const kRequired[] = {"schema_version", "family", "image_type", "preprocess", "postprocess",
                                 "tiling",         "graphs", "checkpoint", "producer"};
const char* const kLayers[] = {"base", "patch", "full"};
const char* const kPrecisions[] = {"fp32", "fp16", "int8"};

template <std::size_t N>
bool one_of(const std::string& value, const char* const (&allowed)[N]) {
    for (const char* a : allowed) {
        if (value == a) return true;
    }
    return false;
}

[[noreturn]] void malformed(const std::string& source, const std::string& what) {
    fail(RUNTIME_ERR_MODEL_LOAD, source + ": " + what);
}

TensorSpec parse_tensor(const json& data) {
    TensorSpec spec;
    spec.name = data.at("name").get<std::string>();
    spec.dtype = data.at("dtype").get<std::string>();
    for (const auto& dim : data.at("shape")) {
        spec.shape.push_back(dim.is_number_integer() ? dim.get<int64_t>() : int64_t{-1});
    }
    return spec;
}

GraphEntry parse_graph(const json& data, bool embedded) {
    GraphEntry entry;
    entry.file = data.at("file").get<std::string>();
    entry.layer = data.at("layer").get<std::string>();
    entry.precision = data.at("precision").get<std::string>();
    entry.mode = data.value("mode", std::string("stitched"));
    entry.opset = data.at("opset").get<int64_t>();
    if (!embedded) entry.sha256 = data.at("sha256").get<std::string>();
    for (const auto& t : data.at("inputs")) entry.inputs.push_back(parse_tensor(t));
    for (const auto& t : data.at("outputs")) entry.outputs.push_back(parse_tensor(t));
    return entry;
}

}  // namespace

Manifest parse_manifest(const std::string& text, const std::string& source, bool embedded) {
    json data;
    try {
        data = json::parse(text);
    } catch (const json::exception& exc) {
        fail(RUNTIME_ERR_MODEL_LOAD, "cannot read " + source + ": " + exc.what());
    }
    if (!data.is_object()) malformed(source, std::string("expected a JSON object, got ") + data.type_name());
    std::string missing;
    for (const char* key : kRequired) {
        if (embedded && std::string(key) == "graphs") continue;
        if (!data.contains(key)) missing += std::string(missing.empty() ? "" : ", ") + "'" + key + "'";
    }
    if (embedded && !data.contains("graph")) missing += std::string(missing.empty() ? "" : ", ") + "'graph'";
    if (!missing.empty()) malformed(source, "missing fields [" + missing + "]");
    if (!data["schema_version"].is_number_integer() || data["schema_version"].get<int64_t>() != kSchemaVersion) {
        malformed(source, "schema_version " + data["schema_version"].dump() +
                              " is not supported; this runtime reads version " + std::to_string(kSchemaVersion));
    }

    Manifest manifest;
    try {
        manifest.family = data.at("family").get<std::string>();
        manifest.image_type = data.at("image_type").get<std::string>();
        const json& pre = data.at("preprocess");
        manifest.preprocess.accepted_channels = pre.value("accepted_channels", std::vector<int64_t>{3, 4});
        manifest.preprocess.drop_channels_from = pre.value("drop_channels_from", int64_t{3});
        manifest.preprocess.scale = pre.at("scale").get<double>();
        if (pre.contains("source_range")) {
            manifest.preprocess.range_low = pre["source_range"].at(0).get<double>();
            manifest.preprocess.range_high = pre["source_range"].at(1).get<double>();
        }
        manifest.preprocess.height = pre.at("height").get<int64_t>();
        manifest.preprocess.width = pre.at("width").get<int64_t>();
        const std::string layout = pre.value("layout", std::string("NCHW"));
        if (layout != "NCHW") malformed(source, "preprocess.layout " + layout + " is not supported; expected NCHW");
        const json& post = data.at("postprocess");
        manifest.postprocess.kind = post.at("kind").get<std::string>();
        manifest.postprocess.channel = post.value("channel", int64_t{0});
        manifest.postprocess.threshold = post.value("threshold", 0.5);
        if (embedded) {
            manifest.graphs.push_back(parse_graph(data.at("graph"), true));
        } else {
            for (const auto& g : data.at("graphs")) manifest.graphs.push_back(parse_graph(g, false));
            manifest.default_graph = data.value("default_graph", std::string());
        }
    } catch (const json::exception& exc) {
        malformed(source, std::string("malformed field (") + exc.what() + ")");
    }

    for (const GraphEntry& g : manifest.graphs) {
        if (!one_of(g.layer, kLayers) || !one_of(g.precision, kPrecisions)) {
            malformed(source, "graph " + g.file + " has layer '" + g.layer + "' / precision '" + g.precision +
                                  "'; expected a layer in (base, patch, full) and a precision in (fp32, fp16, int8)");
        }
        if (g.file.empty() || g.file.find('/') != std::string::npos || g.file.find('\\') != std::string::npos ||
            g.file == "." || g.file == "..") {
            malformed(source, "graph file '" + g.file + "' must be a plain file name inside the bundle");
        }
        if (g.inputs.size() != 1 || g.outputs.size() != 1) {
            malformed(source, "graph " + g.file + " declares " + std::to_string(g.inputs.size()) + " inputs and " +
                                  std::to_string(g.outputs.size()) + " outputs; libruntime runs graphs with one of each");
        }
        for (const TensorSpec* t : {&g.inputs[0], &g.outputs[0]}) {
            if (t->shape.size() != 4 || t->shape[1] <= 0 || t->shape[2] <= 0 || t->shape[3] <= 0) {
                malformed(source, "graph " + g.file + " tensor " + t->name +
                                      " must be (batch, C, H, W) with fixed C, H and W");
            }
            if (t->dtype != "float32") {
                malformed(source, "graph " + g.file + " tensor " + t->name + " has dtype " + t->dtype +
                                      "; libruntime feeds float32");
            }
        }
    }
    if (manifest.graphs.empty()) malformed(source, "the manifest lists no graphs");
    if (manifest.postprocess.kind != "heatmap") {
        malformed(source, "postprocess.kind '" + manifest.postprocess.kind + "' is not supported; expected heatmap");
    }
    return manifest;
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

std::vector<char> read_file(const std::string& path, const char* what) {
    std::ifstream stream(path, std::ios::binary);
    if (!stream) fail(RUNTIME_ERR_MODEL_LOAD, std::string("cannot open ") + what + " " + path);
    std::vector<char> bytes((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
    if (stream.bad()) fail(RUNTIME_ERR_MODEL_LOAD, std::string("cannot read ") + what + " " + path);
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
