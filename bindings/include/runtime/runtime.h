/*
 * libruntime: run exported model bundles (manifest.json + ONNX graphs) from C.
 *
 * Pure C API over ONNX Runtime (and OpenVINO where built). Conventions:
 *
 *  - Every fallible call returns a runtime_status. RUNTIME_OK is 0. On any other
 *    status, runtime_last_error() returns a message naming the bad value and what
 *    was expected.
 *  - Opaque handles come in create/destroy pairs; destroy accepts NULL.
 *  - Buffers are owned by the caller. The library reads input buffers only during
 *    the call and writes only into output memory it was given; a buffer that is
 *    too small yields RUNTIME_ERR_BUFFER_TOO_SMALL with the size needed reported
 *    in the output struct, and nothing is written.
 *  - No C++ exception crosses this boundary.
 *  - Option and I/O structs start with their own size (struct_size) so they can
 *    grow without breaking the ABI: always initialise them with the matching
 *    *_init() function, then set fields.
 *
 * Thread safety:
 *  - runtime_session_run() may be called on one session from several threads at
 *    once (ONNX Runtime's Run is thread-safe; the OpenVINO backend keeps one infer
 *    request per concurrent call). Each call needs its own input/output buffers.
 *  - runtime_session_destroy() must not race with any other call on the same
 *    session.
 *  - Query functions on a session are read-only and may be called concurrently.
 *  - runtime_last_error() is per thread.
 */
#ifndef RUNTIME_RUNTIME_H
#define RUNTIME_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#if defined(RUNTIME_STATIC)
#  define RUNTIME_API
#elif defined(_WIN32)
#  if defined(RUNTIME_BUILDING)
#    define RUNTIME_API __declspec(dllexport)
#  else
#    define RUNTIME_API __declspec(dllimport)
#  endif
#else
#  if defined(RUNTIME_BUILDING)
#    define RUNTIME_API __attribute__((visibility("default")))
#  else
#    define RUNTIME_API
#  endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when a struct grows or a function is added. */
#define RUNTIME_ABI_VERSION 1

typedef enum runtime_status {
    RUNTIME_OK = 0,
    /* A NULL pointer, an uninitialised struct or an option out of range. */
    RUNTIME_ERR_INVALID_ARGUMENT = 1,
    /* The image does not fit the model: channels, layout, size, values. */
    RUNTIME_ERR_INVALID_INPUT = 2,
    /* An output buffer is too small; the sizes needed are in runtime_output. */
    RUNTIME_ERR_BUFFER_TOO_SMALL = 3,
    /* Missing bundle or graph, unreadable/malformed manifest, sha256 mismatch. */
    RUNTIME_ERR_MODEL_LOAD = 4,
    /* The inference engine failed or rejected the graph or device. */
    RUNTIME_ERR_BACKEND = 5,
    /* The backend or device was not built into this library. */
    RUNTIME_ERR_UNSUPPORTED = 6,
    /* Out of memory or a bug; the message says which. */
    RUNTIME_ERR_INTERNAL = 7
} runtime_status;

typedef enum runtime_backend {
    RUNTIME_BACKEND_AUTO = 0, /* ONNX Runtime */
    RUNTIME_BACKEND_ONNXRUNTIME = 1,
    RUNTIME_BACKEND_OPENVINO = 2
} runtime_backend;

typedef enum runtime_device {
    RUNTIME_DEVICE_CPU = 0,
    RUNTIME_DEVICE_GPU = 1 /* ONNX Runtime CUDA provider / OpenVINO "GPU" */
} runtime_device;

/* Which graph of a bundle to load. DEFAULT: the manifest's default_graph when
 * layer is DEFAULT too, otherwise fp32. Ignored for a single .onnx file. */
typedef enum runtime_precision {
    RUNTIME_PRECISION_DEFAULT = 0,
    RUNTIME_PRECISION_FP32 = 1,
    RUNTIME_PRECISION_FP16 = 2,
    RUNTIME_PRECISION_INT8 = 3
} runtime_precision;

/* DEFAULT: the manifest's default_graph when precision is DEFAULT too,
 * otherwise the full-image layer. Ignored for a single .onnx file. */
typedef enum runtime_layer {
    RUNTIME_LAYER_DEFAULT = 0,
    RUNTIME_LAYER_BASE = 1,  /* (B,3,h,w) -> (B,2,h,w) logits: raw output only */
    RUNTIME_LAYER_PATCH = 2, /* (B,3,h,w) -> (B,3,h,w) [heatmap, 0, 0] */
    RUNTIME_LAYER_FULL = 3   /* (B,3,H,W) -> (B,3,H,W) [heatmap, 0, 0] */
} runtime_layer;

typedef enum runtime_layout {
    RUNTIME_LAYOUT_CHW = 0, /* channel planes: data[(c * H + y) * W + x] */
    RUNTIME_LAYOUT_HWC = 1  /* interleaved:    data[(y * W + x) * C + c] */
} runtime_layout;

typedef struct runtime_session_options {
    size_t struct_size;         /* sizeof(runtime_session_options) */
    /* Enum-valued fields are int32_t: a C enum's size is the compiler's choice,
     * a field's must not be. */
    int32_t backend;            /* runtime_backend */
    int32_t device;             /* runtime_device */
    int32_t precision;          /* runtime_precision */
    int32_t layer;              /* runtime_layer */
    int32_t intra_op_threads;   /* 0: the engine's default (one per core) */
    int32_t verify_sha256;      /* non-zero (default): check graph hashes before loading */
    int32_t allow_spinning;     /* non-zero (default, ONNX Runtime's own): idle worker threads busy-wait
                                 * for the next op; 0 frees the cores between calls */
} runtime_session_options;

/* One batch of images, back to back. Values are the file's 0..255 range; the
 * library applies the manifest's scaling (x / 255) and drops a 4th (mask)
 * channel. Non-finite values or values outside 0..255 (beyond a 1e-3 rounding
 * tolerance) are rejected, as are float images that look scaled to 0..1. */
typedef struct runtime_input {
    size_t struct_size;         /* sizeof(runtime_input) */
    const float* data;          /* borrowed for the call: batch*channels*height*width floats */
    int64_t batch;              /* >= 1 */
    int64_t channels;           /* 3 or 4 (the manifest's accepted_channels) */
    int64_t height;             /* must equal the graph's input height */
    int64_t width;              /* must equal the graph's input width */
    int32_t layout;             /* runtime_layout */
    /* Non-zero: data already is the graph's input tensor (NCHW, the graph's
     * channels, scaled): no value checks, no scaling, layout must be CHW. For
     * hosts that pre-process themselves. Default 0. */
    int32_t prescaled;
} runtime_input;

/* Where results go. A NULL pointer means that result is not wanted; a call
 * with both pointers NULL is a size query: it checks the input, sets the
 * *_needed fields and returns RUNTIME_ERR_BUFFER_TOO_SMALL. */
typedef struct runtime_output {
    size_t struct_size;         /* sizeof(runtime_output) */
    float* heatmap;             /* caller-owned: batch*height*width floats in 0..1 */
    size_t heatmap_capacity;    /* in floats */
    float* raw;                 /* caller-owned: the graph output, batch*C*height*width (NCHW) */
    size_t raw_capacity;        /* in floats */
    size_t heatmap_needed;      /* set by runtime_session_run: floats a heatmap needs */
    size_t raw_needed;          /* set by runtime_session_run: floats the raw output needs */
} runtime_output;

/* Facts about the loaded graph. Strings point into the session and live as long
 * as it does; do not free them. */
typedef struct runtime_session_info {
    size_t struct_size;         /* sizeof(runtime_session_info) */
    const char* family;         /* e.g. "brn" */
    const char* graph_file;     /* file name of the loaded graph, e.g. "model.fp32.onnx" */
    const char* layer;          /* "base", "patch" or "full" */
    const char* precision;      /* "fp32", "fp16" or "int8" */
    const char* input_name;
    const char* output_name;
    int32_t backend;            /* runtime_backend actually used (never AUTO) */
    int32_t device;             /* runtime_device */
    int64_t input_channels;     /* channels the graph takes (3) */
    int64_t output_channels;    /* channels of the raw output (3, or 2 for base) */
    int64_t height;             /* graph input height */
    int64_t width;              /* graph input width */
    int32_t has_heatmap;        /* non-zero when the output carries a heatmap channel */
    int32_t heatmap_channel;
    float threshold;            /* the manifest's decision threshold */
} runtime_session_info;

typedef struct runtime_session runtime_session;

/* Library version, e.g. "0.1.0". Static string. */
RUNTIME_API const char* runtime_version(void);
/* RUNTIME_ABI_VERSION the library was built with. */
RUNTIME_API int runtime_abi_version(void);
/* Version of the ONNX Runtime library loaded at run time, e.g. "1.31.1", or
 * NULL when it cannot be used (see runtime_last_error()). Static string. */
RUNTIME_API const char* runtime_onnxruntime_version(void);
/* Non-zero when the backend was built into this library. */
RUNTIME_API int runtime_has_backend(runtime_backend backend);
/* Static name of a status, e.g. "RUNTIME_ERR_MODEL_LOAD". */
RUNTIME_API const char* runtime_status_string(runtime_status status);
/* The message of the last failed call on this thread ("" if none). Owned by the
 * library; valid until the next libruntime call on the same thread. */
RUNTIME_API const char* runtime_last_error(void);

/* Fill defaults (auto backend, CPU, default graph, engine threads, verify). */
RUNTIME_API void runtime_session_options_init(runtime_session_options* options);
RUNTIME_API void runtime_input_init(runtime_input* input);
RUNTIME_API void runtime_output_init(runtime_output* output);

/* Load a bundle directory (manifest.json + graphs) or a single .onnx file that
 * carries its embedded manifest (metadata "sdk.manifest", "sdk.graph_sha256").
 *   path:    borrowed, UTF-8.
 *   options: borrowed; NULL means defaults.
 *   out:     receives a new session owned by the caller (free it with
 *            runtime_session_destroy); set to NULL on failure. */
RUNTIME_API runtime_status runtime_session_create(const char* path, const runtime_session_options* options,
                                                  runtime_session** out);
/* Load a single graph from memory: the serialized ONNX model (with its
 * embedded manifest, as for a .onnx path), borrowed for the call (the library
 * keeps no pointer into it). name labels it in messages (may be NULL). */
RUNTIME_API runtime_status runtime_session_create_from_memory(const void* model, size_t size, const char* name,
                                                              const runtime_session_options* options,
                                                              runtime_session** out);
/* Free a session. NULL is a no-op. */
RUNTIME_API void runtime_session_destroy(runtime_session* session);

/* info is caller-owned; set info->struct_size = sizeof(runtime_session_info)
 * first. Its strings are owned by the session. */
RUNTIME_API runtime_status runtime_session_get_info(const runtime_session* session, runtime_session_info* info);

/* The graph's input/output shape (NCHW); a dynamic axis (the batch) is -1.
 * dims: caller-owned array of capacity entries; *rank receives the rank. If
 * capacity < rank, returns RUNTIME_ERR_BUFFER_TOO_SMALL with *rank set. */
RUNTIME_API runtime_status runtime_session_input_shape(const runtime_session* session, int64_t* dims,
                                                       size_t capacity, size_t* rank);
RUNTIME_API runtime_status runtime_session_output_shape(const runtime_session* session, int64_t* dims,
                                                        size_t capacity, size_t* rank);

/* Run a batch: pre-process input, infer, write the heatmap and/or raw output.
 * input and output are caller-owned and borrowed for the call. Once the input
 * is valid, output->heatmap_needed and output->raw_needed are set (even on
 * RUNTIME_ERR_BUFFER_TOO_SMALL). Asking for a heatmap from a base-layer graph
 * (logits) is RUNTIME_ERR_INVALID_ARGUMENT. Thread-safe, see above. */
RUNTIME_API runtime_status runtime_session_run(runtime_session* session, const runtime_input* input,
                                               runtime_output* output);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RUNTIME_RUNTIME_H */
