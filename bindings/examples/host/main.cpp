// runtime_host BUNDLE INPUT.tiff OUTPUT.tiff [--backend onnxruntime|openvino] [--precision fp32|fp16|int8]
//                                            [--layer full|patch|base] [--threads N] [--repeat N]
//
// Any model family: reads a float32 image in the bundle's source range from a
// TIFF, stored either as one page per channel (how the SDK's datasets are
// written) or as one page of several samples per pixel (contiguous = HWC,
// planar = CHW), and runs the bundle; the manifest says how the image is
// pre-processed (channels read, letterbox, scale). A TIFF's channel i is the
// model's channel i, passed as is. A host that decodes PNG/JPEG instead lays the
// colour planes out as Session::color_order() says: for RUNTIME_COLOR_ORDER_BGR
// (brn bundles) an OpenCV cv::imread Mat goes in unchanged, for RGB (lhrnet) it is
// converted first with cv::cvtColor(mat, mat, cv::COLOR_BGR2RGB). Then, by postprocess kind:
//   heatmap:   writes the heatmap (float32, in graph-input pixels) to OUTPUT.tiff;
//   keypoints: prints each named point in source-image pixels, its score (and
//              whether it reaches the manifest's threshold) and the angle;
//   others, and lower layers: prints every output's name, shape and first values.
// OUTPUT.tiff is written for heatmaps only.
// Both print the transform from the image to the graph input (input = source * scale + pad).
#include <tiffio.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "runtime/runtime.hpp"

namespace {

struct Image {
    std::vector<float> data;
    int64_t channels = 0, height = 0, width = 0;
    runtime_layout layout = RUNTIME_LAYOUT_CHW;
};

using TiffPtr = std::unique_ptr<TIFF, void (*)(TIFF*)>;

TiffPtr open_tiff(const std::string& path, const char* mode) {
    TiffPtr tif(TIFFOpen(path.c_str(), mode), [](TIFF* t) { if (t) TIFFClose(t); });
    if (!tif) throw std::runtime_error("cannot open TIFF " + path);
    return tif;
}

void require_float32(TIFF* tif, const std::string& path) {
    uint16_t bits = 0, format = SAMPLEFORMAT_UINT;
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
    if (bits != 32 || format != SAMPLEFORMAT_IEEEFP) {
        throw std::runtime_error(path + ": expected float32 samples, got " + std::to_string(bits) +
                                 "-bit sample format " + std::to_string(format));
    }
    if (TIFFIsTiled(tif)) throw std::runtime_error(path + ": tiled TIFFs are not supported; write strips");
}

Image read_tiff(const std::string& path) {
    TiffPtr tif = open_tiff(path, "r");
    Image image;
    uint32_t width = 0, height = 0;
    uint16_t samples = 1, planar = PLANARCONFIG_CONTIG;
    TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &width);
    TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &height);
    TIFFGetFieldDefaulted(tif.get(), TIFFTAG_SAMPLESPERPIXEL, &samples);
    TIFFGetFieldDefaulted(tif.get(), TIFFTAG_PLANARCONFIG, &planar);
    image.height = height;
    image.width = width;
    const std::size_t plane = std::size_t(height) * width;

    if (samples == 1) {
        // One page per channel.
        int pages = 0;
        do {
            uint32_t w = 0, h = 0;
            TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &w);
            TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &h);
            if (w != width || h != height) throw std::runtime_error(path + ": pages differ in size");
            require_float32(tif.get(), path);
            image.data.resize(plane * std::size_t(pages + 1));
            float* dst = image.data.data() + plane * std::size_t(pages);
            for (uint32_t row = 0; row < height; ++row) {
                if (TIFFReadScanline(tif.get(), dst + std::size_t(row) * width, row, 0) < 0) {
                    throw std::runtime_error(path + ": cannot read row " + std::to_string(row));
                }
            }
            ++pages;
        } while (TIFFReadDirectory(tif.get()));
        image.channels = pages;
        image.layout = RUNTIME_LAYOUT_CHW;
        return image;
    }

    require_float32(tif.get(), path);
    image.channels = samples;
    image.data.resize(plane * samples);
    if (planar == PLANARCONFIG_SEPARATE) {
        image.layout = RUNTIME_LAYOUT_CHW;
        for (uint16_t s = 0; s < samples; ++s) {
            for (uint32_t row = 0; row < height; ++row) {
                if (TIFFReadScanline(tif.get(), image.data.data() + s * plane + std::size_t(row) * width, row, s) < 0) {
                    throw std::runtime_error(path + ": cannot read row " + std::to_string(row));
                }
            }
        }
    } else {
        image.layout = RUNTIME_LAYOUT_HWC;
        for (uint32_t row = 0; row < height; ++row) {
            if (TIFFReadScanline(tif.get(), image.data.data() + std::size_t(row) * width * samples, row, 0) < 0) {
                throw std::runtime_error(path + ": cannot read row " + std::to_string(row));
            }
        }
    }
    return image;
}

void write_tiff(const std::string& path, const float* data, uint32_t height, uint32_t width) {
    TiffPtr tif = open_tiff(path, "w");
    TIFFSetField(tif.get(), TIFFTAG_IMAGEWIDTH, width);
    TIFFSetField(tif.get(), TIFFTAG_IMAGELENGTH, height);
    TIFFSetField(tif.get(), TIFFTAG_SAMPLESPERPIXEL, uint16_t(1));
    TIFFSetField(tif.get(), TIFFTAG_BITSPERSAMPLE, uint16_t(32));
    TIFFSetField(tif.get(), TIFFTAG_SAMPLEFORMAT, uint16_t(SAMPLEFORMAT_IEEEFP));
    TIFFSetField(tif.get(), TIFFTAG_PHOTOMETRIC, uint16_t(PHOTOMETRIC_MINISBLACK));
    TIFFSetField(tif.get(), TIFFTAG_PLANARCONFIG, uint16_t(PLANARCONFIG_CONTIG));
    TIFFSetField(tif.get(), TIFFTAG_COMPRESSION, uint16_t(COMPRESSION_NONE));
    TIFFSetField(tif.get(), TIFFTAG_ROWSPERSTRIP, height);
    for (uint32_t row = 0; row < height; ++row) {
        if (TIFFWriteScanline(tif.get(), const_cast<float*>(data + std::size_t(row) * width), row, 0) < 0) {
            throw std::runtime_error("cannot write " + path);
        }
    }
}

int usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s BUNDLE INPUT.tiff OUTPUT.tiff [--backend onnxruntime|openvino] "
                 "[--precision fp32|fp16|int8] [--layer full|patch|base] [--threads N] [--repeat N]\n",
                 argv0);
    return 2;
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string text = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
    return text + "]";
}

// Runs body `repeat` times (after one untimed warm-up when repeating); the median in ms.
template <class Body>
double median_ms(int repeat, Body&& body) {
    if (repeat > 1) body();
    std::vector<double> times;
    for (int r = 0; r < repeat; ++r) {
        const auto start = std::chrono::steady_clock::now();
        body();
        times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) return usage(argv[0]);
    runtime::Options options;
    int repeat = 1;
    for (int i = 4; i < argc; ++i) {
        const std::string arg = argv[i];
        if (i + 1 >= argc) return usage(argv[0]);
        const std::string value = argv[++i];
        if (arg == "--backend") {
            options.with_backend(value == "openvino" ? RUNTIME_BACKEND_OPENVINO : RUNTIME_BACKEND_ONNXRUNTIME);
        } else if (arg == "--precision") {
            options.with_precision(value == "int8"   ? RUNTIME_PRECISION_INT8
                                   : value == "fp16" ? RUNTIME_PRECISION_FP16
                                                     : RUNTIME_PRECISION_FP32);
        } else if (arg == "--layer") {
            options.with_layer(value == "patch" ? RUNTIME_LAYER_PATCH
                               : value == "base" ? RUNTIME_LAYER_BASE
                                                 : RUNTIME_LAYER_FULL);
        } else if (arg == "--threads") {
            options.with_threads(std::atoi(value.c_str()));
        } else if (arg == "--repeat") {
            repeat = std::max(1, std::atoi(value.c_str()));
        } else {
            return usage(argv[0]);
        }
    }
    try {
        runtime::Session session(argv[1], options);
        const runtime_session_info info = session.info();
        const Image image = read_tiff(argv[2]);
        const runtime::Images images{image.data.data(), 1, image.channels, image.height, image.width, image.layout};
        runtime_transform transform{};
        runtime::Heatmap heatmap;
        std::vector<runtime::Keypoints> keypoints;
        runtime::Outputs outputs;
        const bool as_heatmap = info.has_heatmap != 0;
        const bool as_keypoints = info.has_keypoints != 0;
        const double ms = median_ms(repeat, [&] {
            if (as_heatmap) {
                heatmap = session.heatmap(images);
                transform = heatmap.transform;
            } else if (as_keypoints) {
                keypoints = session.run_keypoints(images);
                transform = keypoints.at(0).transform;
            } else {
                outputs = session.run(images);
                transform = outputs.transform;
            }
        });
        std::printf("%s: family %s (%s), %s %s on %s, image %lldx%lld with %lld channels (%s), "
                    "median %.4f ms over %d runs\n",
                    argv[2], info.family, info.postprocess, info.graph_file, info.precision,
                    info.backend == RUNTIME_BACKEND_OPENVINO ? "openvino" : "onnxruntime",
                    static_cast<long long>(image.height), static_cast<long long>(image.width),
                    static_cast<long long>(image.channels), image.layout == RUNTIME_LAYOUT_HWC ? "HWC" : "CHW", ms,
                    repeat);
        std::printf("transform: scale_x=%.17g scale_y=%.17g pad_x=%lld pad_y=%lld resized=%lldx%lld source=%lldx%lld\n",
                    transform.scale_x, transform.scale_y, static_cast<long long>(transform.pad_x),
                    static_cast<long long>(transform.pad_y), static_cast<long long>(transform.resized_width),
                    static_cast<long long>(transform.resized_height), static_cast<long long>(transform.source_width),
                    static_cast<long long>(transform.source_height));
        if (as_heatmap) {
            write_tiff(argv[3], heatmap.data.data(), uint32_t(heatmap.height), uint32_t(heatmap.width));
            std::size_t over = 0;
            float peak = 0.0f;
            for (float v : heatmap.data) {
                over += v > info.heatmap_threshold;
                peak = std::max(peak, v);
            }
            std::printf("heatmap %lldx%lld: peak %.4f, %zu pixels over %.2f\n", static_cast<long long>(heatmap.height),
                        static_cast<long long>(heatmap.width), peak, over, info.heatmap_threshold);
            std::printf("wrote %s\n", argv[3]);
        } else if (as_keypoints) {
            std::printf("keypoints in source pixels, score threshold %.4f:\n", info.keypoint_threshold);
            for (std::size_t i = 0; i < keypoints.size(); ++i) {
                for (const runtime::Keypoint& p : keypoints[i].points) {
                    std::printf("image %zu point %s: x=%.6f y=%.6f score=%.6f %s\n", i, p.name.c_str(), p.x, p.y,
                                p.score, p.score >= info.keypoint_threshold ? "found" : "not found");
                }
                if (keypoints[i].has_angle) std::printf("image %zu angle: %.6f degrees\n", i, keypoints[i].angle);
            }
        } else {
            for (const runtime::Tensor& t : outputs.tensors) {
                std::printf("output %s %s:", t.name.c_str(), shape_text(t.shape).c_str());
                for (std::size_t i = 0; i < std::min<std::size_t>(t.data.size(), 8); ++i) std::printf(" %.9g", t.data[i]);
                std::printf("%s\n", t.data.size() > 8 ? " ..." : "");
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "runtime_host: %s\n", e.what());
        return 1;
    }
    return 0;
}
