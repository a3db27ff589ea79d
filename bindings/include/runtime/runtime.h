/*
 * libruntime: run exported model bundles (manifest.json + ONNX graphs) from C.
 *
 * Pure C API over ONNX Runtime (and OpenVINO where built). Family-agnostic:
 * what a graph takes and returns, and how an image becomes its input, comes
 * from the bundle's manifest (schema version 2, runtime/MANIFEST.md).
 *
 * Conventions:
 *  - Every fallible call returns a runtime_status. RUNTIME_OK is 0. On any other
 *    status, runtime_last_error() returns a message naming the bad value and what
 *    was expected.
 *  - Opaque handles come in create/destroy pairs; destroy accepts NULL.
 *  - Buffers are owned by the caller. The library reads input buffers only during
 *    the call and writes only into output memory it was given; a buffer that is
 *    too small yields RUNTIME_ERR_BUFFER_TOO_SMALL with the size needed reported
 *    back, and nothing is written.
 *  - Strings the library returns (names, info fields) are owned by the library:
 *    static, or owned by the session and valid until runtime_session_destroy().
 *  - No C++ exception crosses this boundary.
 *  - Structs that start with struct_size can grow without breaking the ABI:
 *    always initialise them with the matching *_init() function, then set fields.
 *    runtime_transform, runtime_tensor_buffer and runtime_keypoints are
 *    fixed-layout value types.
 *
 * Thread safety:
 *  - runtime_session_run(), runtime_session_run_heatmap() and
 *    runtime_session_run_keypoints() may be called on one session from several
 *    threads at once (ONNX Runtime's Run is thread-safe; the
 *    OpenVINO backend keeps one infer request per concurrent call). Each call needs
 *    its own input and output buffers.
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

/* Bumped when a struct grows, a function is added or the API changes.
 * 2: manifest schema 2, N inputs/outputs by name, letterbox, runtime_outputs.
 * 3: keypoints: runtime_keypoints, runtime_session_run_keypoints(),
 *    runtime_session_keypoint_name(); runtime_session_info grows has_keypoints,
 *    keypoint_count, keypoint_threshold and min_size at its end.
 * 4: runtime_color_order and runtime_session_color_order() (no struct changed). */
#define RUNTIME_ABI_VERSION 4
/* Most dimensions a tensor libruntime describes may have. */
#define RUNTIME_MAX_RANK 8
/* Most named points runtime_keypoints holds. A keypoints model with more is
 * refused by runtime_session_run_keypoints() (runtime_session_run() still
 * returns its raw outputs). Part of the ABI: never changes within a version. */
#define RUNTIME_MAX_KEYPOINTS 32

typedef enum runtime_status {
    RUNTIME_OK = 0,
    /* A NULL pointer, an uninitialised struct, an option out of range, or a call
     * the loaded graph cannot answer (a heatmap or keypoints from a graph without them). */
    RUNTIME_ERR_INVALID_ARGUMENT = 1,
    /* The image does not fit the model: channels, layout, size, values. */
    RUNTIME_ERR_INVALID_INPUT = 2,
    /* An output buffer is too small (or none given); the sizes needed are reported. */
    RUNTIME_ERR_BUFFER_TOO_SMALL = 3,
    /* Missing bundle or graph, unreadable/malformed manifest, sha256 mismatch,
     * an old schema version, a graph libruntime cannot feed. */
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
    RUNTIME_LAYER_BASE = 1,  /* the bare network on a patch: raw outputs (e.g. logits) only */
    RUNTIME_LAYER_PATCH = 2, /* the network and its output wrapper on a patch */
    RUNTIME_LAYER_FULL = 3   /* the whole image at the manifest's size, tiling inside the graph */
} runtime_layer;

typedef enum runtime_layout {
    RUNTIME_LAYOUT_CHW = 0, /* channel planes: data[(c * H + y) * W + x] */
    RUNTIME_LAYOUT_HWC = 1  /* interleaved:    data[(y * W + x) * C + c] */
} runtime_layout;

/* How an image of the caller's size becomes the graph's input size. */
typedef enum runtime_resize {
    RUNTIME_RESIZE_EXACT = 0,    /* images must have the graph's height and width */
    RUNTIME_RESIZE_LETTERBOX = 1 /* any size: scaled to fit (bilinear), centred, padded */
} runtime_resize;

/* The manifest's preprocess.color_order: which colour plane of the bundle's
 * PNG/JPEG images is channel 0. libruntime decodes no image files: a host
 * passes buffers whose channel i is the model's channel i, so it decodes its
 * files in this order (see runtime_session_color_order()). TIFF files and raw
 * arrays are never reordered. */
typedef enum runtime_color_order {
    RUNTIME_COLOR_ORDER_RGB = 0, /* channel 0 is the red plane (an ordinary photo); the default */
    RUNTIME_COLOR_ORDER_BGR = 1  /* channel 0 is the blue plane, 1 green, 2 red: OpenCV's order */
} runtime_color_order;

/* Element types a manifest may declare. libruntime feeds and reads FLOAT32
 * tensors only; a graph with another dtype is refused at load. */
typedef enum runtime_dtype {
    RUNTIME_DTYPE_FLOAT32 = 1,
    RUNTIME_DTYPE_FLOAT16 = 2,
    RUNTIME_DTYPE_UINT8 = 3,
    RUNTIME_DTYPE_INT8 = 4,
    RUNTIME_DTYPE_INT64 = 5
} runtime_dtype;

typedef struct runtime_session_options {
    size_t struct_size;         /* sizeof(runtime_session_options) */
    /* Enum-valued fields are int32_t: a C enum's size is the compiler's choice,
     * a field's must not be. */
    int32_t backend;            /* runtime_backend */
    int32_t device;             /* runtime_device */
    int32_t precision;          /* runtime_precision */
    int32_t layer;              /* runtime_layer */
    int32_t intra_op_threads;   /* 0: the engine's default (one per core); at most 1024 */
    int32_t verify_sha256;      /* non-zero (default): check graph hashes before loading */
    int32_t allow_spinning;     /* non-zero (default, ONNX Runtime's own): idle worker threads busy-wait
                                 * for the next op; 0 frees the cores between calls */
} runtime_session_options;

/* One batch of source images, back to back, all of one size. Values are in the
 * manifest's source_range (runtime_session_info.source_low..source_high). The
 * library pre-processes as the manifest says: picks its read_channels, clips to
 * source_range, letterboxes (resize LETTERBOX), multiplies by scale and appends
 * the validity mask channel where asked. Non-finite values, values outside
 * source_range (beyond a 1e-3 rounding tolerance) and, when the range reaches
 * above 1, float images that look scaled to 0..1 are rejected; only the channels
 * read are checked. */
typedef struct runtime_input {
    size_t struct_size;         /* sizeof(runtime_input) */
    const float* data;          /* borrowed for the call: batch*channels*height*width floats */
    int64_t batch;              /* >= 1 */
    int64_t channels;           /* one of the manifest's accepted_channels */
    /* Either side below the manifest's preprocess.min_size (default 1) is
     * RUNTIME_ERR_INVALID_INPUT (checked after the channel count, before the layout). */
    int64_t height;             /* EXACT: the graph's input height; LETTERBOX: any, >= min_size */
    int64_t width;              /* EXACT: the graph's input width;  LETTERBOX: any, >= min_size */
    int32_t layout;             /* runtime_layout, one of the manifest's accepted_layouts */
    /* Non-zero: data already is the graph's image input (NCHW, the graph's
     * channels, height and width, scaled, mask included): no value checks, no
     * pre-processing, layout must be CHW; the transform is the identity. For
     * hosts that pre-process themselves. Default 0. */
    int32_t prescaled;
} runtime_input;

/* A graph input or output. Strings are owned by the session. */
typedef struct runtime_tensor_info {
    size_t struct_size;         /* sizeof(runtime_tensor_info) */
    const char* name;           /* the graph's tensor name */
    const char* role;           /* the manifest's role: "image", "heatmap", "logits", "points", ... */
    int32_t dtype;              /* runtime_dtype (always FLOAT32 in a loaded session) */
    int32_t rank;               /* 1..RUNTIME_MAX_RANK */
    int64_t dims[RUNTIME_MAX_RANK]; /* dims[0] is the batch axis: -1 when dynamic; unused entries 0 */
} runtime_tensor_info;

/* Where a source image lies on the graph's input canvas, per axis:
 * input = source * scale + pad, in continuous pixel coordinates (0 is the
 * left/top edge of the first pixel, a pixel centre is at i + 0.5). The identity
 * for resize EXACT and prescaled input. Same meaning as runtime/_letterbox.py. */
typedef struct runtime_transform {
    double scale_x;
    double scale_y;
    int64_t pad_x;
    int64_t pad_y;
    int64_t resized_width;      /* the image's size on the canvas */
    int64_t resized_height;
    int64_t source_width;       /* the caller's image size */
    int64_t source_height;
} runtime_transform;

/* One output's destination. */
typedef struct runtime_tensor_buffer {
    float* data;                /* caller-owned, or NULL: this output is not wanted */
    size_t capacity;            /* in floats */
    size_t needed;              /* set by runtime_session_run: floats this output needs */
} runtime_tensor_buffer;

/* Where runtime_session_run() writes. tensors[i] receives output i (order of
 * runtime_session_output_info), in the graph's own shape with the batch axis
 * set to the input's batch, C order (NCHW for images). */
typedef struct runtime_outputs {
    size_t struct_size;             /* sizeof(runtime_outputs) */
    runtime_tensor_buffer* tensors; /* caller-owned array of count entries */
    size_t count;                   /* must equal the session's output count */
    runtime_transform transform;    /* set by runtime_session_run */
} runtime_outputs;

/* Facts about the loaded graph. Strings are owned by the session. */
typedef struct runtime_session_info {
    size_t struct_size;         /* sizeof(runtime_session_info) */
    const char* family;         /* the manifest's model family */
    const char* variant;        /* the family's name for the input geometry */
    const char* graph_file;     /* file name of the loaded graph, e.g. "model.fp32.onnx" */
    const char* layer;          /* "base", "patch" or "full" */
    const char* precision;      /* "fp32", "fp16" or "int8" */
    const char* postprocess;    /* the manifest's postprocess kind: "heatmap", "keypoints", ... */
    int32_t backend;            /* runtime_backend actually used (never AUTO) */
    int32_t device;             /* runtime_device */
    size_t input_count;         /* graph inputs: 1, the image (libruntime refuses graphs with others) */
    size_t output_count;        /* graph outputs */
    int64_t channels;           /* channels of the image input (read channels + mask) */
    int64_t height;             /* height and width of the image input */
    int64_t width;
    int32_t resize;             /* runtime_resize */
    int32_t has_heatmap;        /* non-zero: runtime_session_run_heatmap() works (kind heatmap, not base) */
    double source_low;          /* source_range: the values runtime_input carries */
    double source_high;
    /* Valid when has_heatmap: */
    size_t heatmap_output;      /* index of the output holding the heatmap */
    int64_t heatmap_channel;    /* its channel */
    double heatmap_threshold;   /* the manifest's decision threshold */
    /* ABI 3. Non-zero: runtime_session_run_keypoints() works (kind keypoints,
     * the full layer, at most RUNTIME_MAX_KEYPOINTS points). */
    int32_t has_keypoints;
    /* Valid when postprocess is "keypoints" (any layer), else 0: */
    size_t keypoint_count;      /* the manifest's named points; runtime_session_keypoint_name() names them */
    double keypoint_threshold;  /* the manifest's score_threshold: a lower score means "not found" */
    int64_t min_size;           /* ABI 3: the fewest pixels a source image may have on each side (>= 1) */
} runtime_session_info;

/* The decoded points of one image (postprocess kind "keypoints"), in
 * source-image pixels: the letterbox undone as runtime_map_to_source() does,
 * continuous coordinates (0 is the left/top edge of the first pixel, a pixel
 * centre is at i + 0.5). Point i is the manifest's point i, named by
 * runtime_session_keypoint_name(session, i). Every point is reported whatever
 * its score: a score below runtime_session_info.keypoint_threshold (or the
 * caller's own) means the point was not found, and the caller decides; its
 * x, y are then the graph's best guess. Fixed-layout value type. */
typedef struct runtime_keypoints {
    size_t count;                         /* points: runtime_session_info.keypoint_count */
    double x[RUNTIME_MAX_KEYPOINTS];      /* entries from count on are 0 */
    double y[RUNTIME_MAX_KEYPOINTS];
    double score[RUNTIME_MAX_KEYPOINTS];  /* the peak score that located the point, 0..1 */
    int32_t has_angle;                    /* non-zero: the manifest names an angle output */
    double angle;                         /* degrees, as the graph returns it; 0 without an angle */
    runtime_transform transform;          /* the image's pre-processing (input = source * scale + pad) */
} runtime_keypoints;

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

/* Fill defaults (zeros, struct_size; see each struct for its defaults).
 * Options: auto backend, CPU, default graph, engine threads, verify, spinning.
 * Input: batch 1, CHW, not prescaled. NULL is a no-op. */
RUNTIME_API void runtime_session_options_init(runtime_session_options* options);
RUNTIME_API void runtime_input_init(runtime_input* input);
RUNTIME_API void runtime_outputs_init(runtime_outputs* outputs);
RUNTIME_API void runtime_tensor_info_init(runtime_tensor_info* info);
RUNTIME_API void runtime_session_info_init(runtime_session_info* info);

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

/* info: caller-owned, initialised with runtime_session_info_init(). */
RUNTIME_API runtime_status runtime_session_get_info(const runtime_session* session, runtime_session_info* info);

/* The graph's inputs and outputs, in the manifest's order. info: caller-owned,
 * initialised with runtime_tensor_info_init(). An index out of range is
 * RUNTIME_ERR_INVALID_ARGUMENT. */
RUNTIME_API runtime_status runtime_session_input_count(const runtime_session* session, size_t* count);
RUNTIME_API runtime_status runtime_session_output_count(const runtime_session* session, size_t* count);
RUNTIME_API runtime_status runtime_session_input_info(const runtime_session* session, size_t index,
                                                      runtime_tensor_info* info);
RUNTIME_API runtime_status runtime_session_output_info(const runtime_session* session, size_t index,
                                                       runtime_tensor_info* info);
/* The index of the output called name; RUNTIME_ERR_INVALID_ARGUMENT (naming the
 * outputs there are) when there is none. */
RUNTIME_API runtime_status runtime_session_find_output(const runtime_session* session, const char* name,
                                                       size_t* index);

/* Run a batch: pre-process input, infer, write every output whose data is not
 * NULL. input and outputs are caller-owned and borrowed for the call.
 * outputs->count must equal the output count. Once the input is valid, every
 * tensors[i].needed is set and outputs->transform describes the pre-processing
 * (even on RUNTIME_ERR_BUFFER_TOO_SMALL). A call with every data NULL is a size
 * query: RUNTIME_ERR_BUFFER_TOO_SMALL with the sizes set and nothing run; any
 * buffer too small is RUNTIME_ERR_BUFFER_TOO_SMALL and nothing is written.
 * Thread-safe, see above. */
RUNTIME_API runtime_status runtime_session_run(runtime_session* session, const runtime_input* input,
                                               runtime_outputs* outputs);

/* For postprocess kind "heatmap" (not the base layer): run a batch and write
 * the heatmap, (batch, H, W) floats in graph-input pixels, clipped to the
 * manifest's range. *needed (required) receives batch*H*W once the input is
 * valid; heatmap NULL is a size query (RUNTIME_ERR_BUFFER_TOO_SMALL).
 * transform may be NULL; otherwise it receives the pre-processing's transform.
 * Another kind, or the base layer, is RUNTIME_ERR_INVALID_ARGUMENT.
 * Thread-safe, see above. */
RUNTIME_API runtime_status runtime_session_run_heatmap(runtime_session* session, const runtime_input* input,
                                                       float* heatmap, size_t capacity, size_t* needed,
                                                       runtime_transform* transform);

/* For postprocess kind "keypoints", full layer: run a batch and write one
 * runtime_keypoints per image into keypoints[0..batch). capacity counts
 * runtime_keypoints entries. *needed (required) receives the batch once the
 * input is valid; keypoints NULL is a size query (RUNTIME_ERR_BUFFER_TOO_SMALL),
 * and a capacity below the batch is RUNTIME_ERR_BUFFER_TOO_SMALL with nothing
 * written. Another kind, a patch or base layer, or a model with more than
 * RUNTIME_MAX_KEYPOINTS points is RUNTIME_ERR_INVALID_ARGUMENT. A non-finite
 * point, score or angle from the graph is RUNTIME_ERR_BACKEND (a broken graph),
 * with nothing written. Points below the score threshold are reported too (see
 * runtime_keypoints).
 * Thread-safe, see above. */
RUNTIME_API runtime_status runtime_session_run_keypoints(runtime_session* session, const runtime_input* input,
                                                         runtime_keypoints* keypoints, size_t capacity,
                                                         size_t* needed);

/* For postprocess kind "keypoints": the name of point index (0 ..
 * keypoint_count - 1), e.g. "slot". *name is owned by the session. Another kind
 * or an index out of range is RUNTIME_ERR_INVALID_ARGUMENT. */
RUNTIME_API runtime_status runtime_session_keypoint_name(const runtime_session* session, size_t index,
                                                         const char** name);

/* ABI 4. The manifest's preprocess.color_order ("rgb" when the manifest has
 * none) as a runtime_color_order in *order. A host that decodes PNG/JPEG files
 * lays the planes out in this order (a 4th plane, alpha, stays channel 3):
 *   RUNTIME_COLOR_ORDER_BGR: an OpenCV host passes its BGR cv::Mat as is
 *     (cv::imread gives blue in channel 0); a host decoding RGB (libpng, PIL)
 *     swaps channels 0 and 2.
 *   RUNTIME_COLOR_ORDER_RGB: an OpenCV host converts first
 *     (cv::cvtColor(mat, mat, cv::COLOR_BGR2RGB)); an RGB decoder's planes go as is.
 * TIFF data and arrays that already are in the model's channel order are
 * passed unchanged. A NULL argument is RUNTIME_ERR_INVALID_ARGUMENT. */
RUNTIME_API runtime_status runtime_session_color_order(const runtime_session* session, int32_t* order);

/* Map count (x, y) points in place from graph-input pixels to source-image
 * pixels: x = (x - pad_x) / scale_x, y = (y - pad_y) / scale_y. xy holds
 * 2*count doubles, caller-owned. A transform with a scale that is not positive
 * and finite is RUNTIME_ERR_INVALID_ARGUMENT. Reentrant. */
RUNTIME_API runtime_status runtime_map_to_source(const runtime_transform* transform, double* xy, size_t count);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RUNTIME_RUNTIME_H */
