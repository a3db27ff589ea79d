/* Compiled as C (not C++): proves runtime.h is a C header and the C API is
 * usable from C. Needs no bundle. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "runtime/runtime.h"

static int failures = 0;

#define EXPECT(cond)                                                          \
    do {                                                                      \
        if (!(cond)) {                                                        \
            ++failures;                                                       \
            fprintf(stderr, "%s:%d: EXPECT failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                     \
    } while (0)

int main(int argc, char** argv) {
    runtime_session_options options;
    runtime_session* session = (runtime_session*)&options; /* must be reset to NULL on failure */
    runtime_status status;
    const char* missing = argc > 1 ? argv[1] : "/nonexistent/bundle";
    runtime_input input;
    runtime_outputs outputs;
    runtime_tensor_info tensor;
    runtime_session_info info;
    runtime_keypoints keypoints[2];
    size_t needed = 7;
    const char* name = NULL;
    int32_t order = -1;
    runtime_transform transform = {1.0, 1.0, 0, 0, 0, 0, 0, 0};
    double xy[4] = {0.0, 0.0, 10.0, 20.0};

    EXPECT(strcmp(runtime_version(), RUNTIME_TEST_VERSION) == 0);
    EXPECT(runtime_abi_version() == RUNTIME_ABI_VERSION && RUNTIME_ABI_VERSION == 4);
    EXPECT(runtime_onnxruntime_version() != NULL);
    EXPECT(runtime_has_backend(RUNTIME_BACKEND_ONNXRUNTIME) == 1);
    EXPECT(strcmp(runtime_status_string(RUNTIME_ERR_MODEL_LOAD), "RUNTIME_ERR_MODEL_LOAD") == 0);
    EXPECT(strcmp(runtime_last_error(), "") == 0);

    runtime_session_options_init(&options);
    EXPECT(options.struct_size == sizeof(runtime_session_options));
    EXPECT(options.verify_sha256 == 1);

    status = runtime_session_create(missing, &options, &session);
    EXPECT(status == RUNTIME_ERR_MODEL_LOAD);
    EXPECT(session == NULL);
    EXPECT(strstr(runtime_last_error(), "no bundle directory or graph file") != NULL);

    status = runtime_session_create(NULL, NULL, &session);
    EXPECT(status == RUNTIME_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(runtime_last_error(), "path is NULL") != NULL);
    EXPECT(runtime_session_create(missing, NULL, NULL) == RUNTIME_ERR_INVALID_ARGUMENT);

    options.struct_size = 4;
    EXPECT(runtime_session_create(missing, &options, &session) == RUNTIME_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(runtime_last_error(), "struct_size") != NULL);
    /* Options are checked before the path: a thread count no engine can start is refused at once
     * (ONNX Runtime never finished loading with 20000). */
    runtime_session_options_init(&options);
    options.intra_op_threads = 1025;
    EXPECT(runtime_session_create(missing, &options, &session) == RUNTIME_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(runtime_last_error(), "intra_op_threads is 1025; expected 0..1024") != NULL);

    EXPECT(runtime_session_run(NULL, NULL, NULL) == RUNTIME_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(runtime_last_error(), "session is NULL") != NULL);
    EXPECT(runtime_session_run_heatmap(NULL, NULL, NULL, 0, NULL, NULL) == RUNTIME_ERR_INVALID_ARGUMENT);
    EXPECT(runtime_session_run_keypoints(NULL, NULL, keypoints, 2, &needed) == RUNTIME_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(runtime_last_error(), "session is NULL") != NULL);
    EXPECT(needed == 7);
    EXPECT(runtime_session_keypoint_name(NULL, 0, &name) == RUNTIME_ERR_INVALID_ARGUMENT && name == NULL);
    EXPECT(runtime_session_color_order(NULL, &order) == RUNTIME_ERR_INVALID_ARGUMENT && order == -1);
    EXPECT(strstr(runtime_last_error(), "session is NULL") != NULL);
    EXPECT(RUNTIME_COLOR_ORDER_RGB == 0 && RUNTIME_COLOR_ORDER_BGR == 1);
    EXPECT(runtime_session_output_count(NULL, NULL) == RUNTIME_ERR_INVALID_ARGUMENT);
    EXPECT(runtime_session_find_output(NULL, "x", NULL) == RUNTIME_ERR_INVALID_ARGUMENT);
    runtime_session_destroy(NULL);

    /* Every struct_size-first struct has an init that sets its size. */
    runtime_input_init(&input);
    EXPECT(input.struct_size == sizeof(runtime_input) && input.batch == 1 && input.layout == RUNTIME_LAYOUT_CHW);
    runtime_outputs_init(&outputs);
    EXPECT(outputs.struct_size == sizeof(runtime_outputs) && outputs.tensors == NULL && outputs.count == 0);
    runtime_tensor_info_init(&tensor);
    EXPECT(tensor.struct_size == sizeof(runtime_tensor_info) && tensor.rank == 0);
    runtime_session_info_init(&info);
    EXPECT(info.struct_size == sizeof(runtime_session_info));
    EXPECT(info.has_keypoints == 0 && info.keypoint_count == 0 && info.keypoint_threshold == 0.0);
    /* ABI 3 appended the keypoint facts: an ABI 2 caller's struct ends where they begin. */
    EXPECT(offsetof(runtime_session_info, has_keypoints) > offsetof(runtime_session_info, heatmap_threshold));
    EXPECT(offsetof(runtime_session_info, keypoint_threshold) > offsetof(runtime_session_info, keypoint_count));
    EXPECT(RUNTIME_MAX_KEYPOINTS == 32 && sizeof(keypoints[0].x) / sizeof(keypoints[0].x[0]) == RUNTIME_MAX_KEYPOINTS);
    EXPECT(sizeof(keypoints[0].score) / sizeof(keypoints[0].score[0]) == RUNTIME_MAX_KEYPOINTS);
    EXPECT(RUNTIME_MAX_RANK == 8 && sizeof(tensor.dims) / sizeof(tensor.dims[0]) == RUNTIME_MAX_RANK);

    /* The transform's inverse, without a session: input = source * scale + pad. */
    transform.scale_x = 0.5;
    transform.scale_y = 2.0;
    transform.pad_x = 3;
    transform.pad_y = 0;
    EXPECT(runtime_map_to_source(&transform, xy, 2) == RUNTIME_OK);
    EXPECT(xy[0] == -6.0 && xy[1] == 0.0 && xy[2] == 14.0 && xy[3] == 10.0);
    transform.scale_x = 0.0;
    EXPECT(runtime_map_to_source(&transform, xy, 2) == RUNTIME_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(runtime_last_error(), "not positive") != NULL);
    transform.scale_x = HUGE_VAL; /* an infinite scale mapped every point to 0 */
    EXPECT(runtime_map_to_source(&transform, xy, 2) == RUNTIME_ERR_INVALID_ARGUMENT);
    EXPECT(xy[0] == -6.0 && xy[2] == 14.0); /* nothing written */

    if (failures == 0) printf("C header test passed (libruntime %s)\n", runtime_version());
    return failures;
}
