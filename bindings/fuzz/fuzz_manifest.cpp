// libFuzzer target: arbitrary bytes as manifest JSON text, through what
// libruntime does with a manifest before it runs a graph (runtime.cpp):
//  - load() of a bundle: the byte order mark dropped, parse_manifest(), then
//    check_runnable() of the graph chosen (here: of every graph);
//  - read_embedded() of a lone graph: parse_manifest(embedded), and the same
//    bytes as a serialized ONNX model through scan_onnx();
//  - make_session() and run(): the image geometry taken from the graph, then
//    check_input() and preprocess() of a small batch the manifest accepts.
// A finding is a crash, a sanitizer report, a leak, an exception other than
// runtime::detail::Error (the C API would report it as an internal error) or an
// Error whose message is not UTF-8 (hosts and the Python shim take it as text).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

#include "internal.hpp"

using namespace runtime::detail;

namespace {

bool valid_utf8(const std::string& s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= s.size()) return false;
        for (std::size_t k = 1; k <= n; ++k) {
            const unsigned char d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3F);
        }
        static const uint32_t kLeast[] = {0, 0x80, 0x800, 0x10000};
        if (cp < kLeast[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

void expect_text(const Error& error) {
    if (!valid_utf8(error.what())) {
        std::fprintf(stderr, "fuzz_manifest: error message is not UTF-8: %s\n", error.what());
        std::abort();
    }
}

// runtime.cpp without_bom().
std::string without_bom(const std::string& text) {
    return text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? text.substr(3) : text;
}

// Most floats a batch here may hold, in and out: keeps each run small.
constexpr int64_t kMaxElements = int64_t(1) << 16;

bool small(std::initializer_list<int64_t> dims) {
    int64_t n = 1;
    for (int64_t d : dims) {
        if (d < 1 || d > kMaxElements || n * d > kMaxElements) return false;
        n *= d;
    }
    return true;
}

// A batch of a shape the manifest accepts (smaller than the graph's input when
// letterboxed), every value at the bottom of the source range, through
// check_input() and preprocess() as run() does.
void run_small_batch(const Manifest& manifest, const GraphEntry& entry) {
    const Preprocess& pre = manifest.preprocess;
    const TensorSpec& image = entry.inputs[0];  // check_runnable(): the only input, (N, C, H, W)
    const ImageGeometry graph{image.shape[1], image.shape[2], image.shape[3], image.shape[0]};
    for (int32_t layout : {RUNTIME_LAYOUT_CHW, RUNTIME_LAYOUT_HWC}) {
        runtime_input in{};
        in.struct_size = sizeof(in);
        in.batch = graph.batch > 0 ? graph.batch : 1;
        in.channels = pre.accepted_channels.front();
        in.height = pre.resize == Resize::letterbox ? std::min<int64_t>(graph.height, 24) : graph.height;
        in.width = pre.resize == Resize::letterbox ? std::min<int64_t>(graph.width, 7) : graph.width;
        in.layout = layout;
        runtime_transform transform;
        try {
            transform = check_input(in, pre, graph);
        } catch (const Error& error) {
            expect_text(error);
            continue;
        }
        if (!small({in.batch, in.channels, in.height, in.width}) ||
            !small({in.batch, graph.channels, graph.height, graph.width})) {
            continue;
        }
        const std::vector<float> source(std::size_t(in.batch * in.channels * in.height * in.width),
                                        float(pre.source_low));
        std::vector<float> out(std::size_t(in.batch * graph.channels * graph.height * graph.width));
        in.data = source.data();
        try {
            preprocess(in, pre, graph, transform, out.data());
        } catch (const Error& error) {
            expect_text(error);
        }
    }
}

void check_manifest(const std::string& text, const std::string& source, bool embedded) {
    Manifest manifest;
    try {
        manifest = parse_manifest(text, source, embedded);
    } catch (const Error& error) {
        expect_text(error);
        return;
    }
    for (const GraphEntry& entry : manifest.graphs) {
        try {
            check_runnable(manifest, entry, source);
        } catch (const Error& error) {
            expect_text(error);
            continue;
        }
        run_small_batch(manifest, entry);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    check_manifest(without_bom(text), "bundle/manifest.json", false);
    check_manifest(text, "model.onnx (metadata sdk.manifest)", true);

    // The same bytes as a lone graph: its wire format, then its embedded manifest.
    const std::vector<char> model(text.begin(), text.end());
    try {
        const OnnxFacts facts = scan_onnx(model, "model.onnx");
        sha256_hex(facts.graph, facts.graph_size);
        for (const auto& [key, value] : facts.metadata) {
            if (key == "sdk.manifest") check_manifest(value, "model.onnx (metadata sdk.manifest)", true);
        }
    } catch (const Error& error) {
        expect_text(error);
    }
    return 0;
}
