/* Compiled as C (not C++): proves runtime.h is a C header and the C API is
 * usable from C. Needs no bundle. */
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

    EXPECT(strcmp(runtime_version(), RUNTIME_TEST_VERSION) == 0);
    EXPECT(runtime_abi_version() == RUNTIME_ABI_VERSION);
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

    EXPECT(runtime_session_run(NULL, NULL, NULL) == RUNTIME_ERR_INVALID_ARGUMENT);
    EXPECT(strstr(runtime_last_error(), "session is NULL") != NULL);
    runtime_session_destroy(NULL);

    if (failures == 0) printf("C header test passed (libruntime %s)\n", runtime_version());
    return failures;
}
