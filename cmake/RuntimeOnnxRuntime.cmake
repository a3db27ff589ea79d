# Defines the IMPORTED target runtime::onnxruntime: the shared library shipped in
# the onnxruntime Python wheel plus C/C++ headers from, in order,
#   -DONNXRUNTIME_ROOT=<dir with include/onnxruntime or include/>,
#   an installed package (/usr/include/onnxruntime, libonnxruntime-dev),
#   Debian's libonnxruntime-dev fetched into the build tree by
#   bindings/tools/fetch_onnxruntime_headers.sh (apt, the machine's own mirror).
# The wheel's file is libonnxruntime.so.<version>; a libonnxruntime.so.1 soname
# link is made in the build tree so that the linker and the loader agree.
#
# Result variables: RUNTIME_ONNXRUNTIME_LIBRARY (the wheel file),
# RUNTIME_ONNXRUNTIME_VERSION, RUNTIME_ONNXRUNTIME_INCLUDE_DIR.

set(ONNXRUNTIME_ROOT "" CACHE PATH "Directory holding include/onnxruntime (headers); the library comes from the wheel")
set(ONNXRUNTIME_LIBRARY "" CACHE FILEPATH "libonnxruntime.so to link instead of the onnxruntime wheel's")

if(NOT ONNXRUNTIME_LIBRARY)
  execute_process(
    COMMAND "${Python3_EXECUTABLE}" -c
            "import glob, os, onnxruntime; d = os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'); print(';'.join([onnxruntime.__version__] + sorted(glob.glob(os.path.join(d, 'libonnxruntime.so.*')))))"
    OUTPUT_VARIABLE _ort_probe
    ERROR_VARIABLE _ort_error
    RESULT_VARIABLE _ort_result
    OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT _ort_result EQUAL 0)
    message(FATAL_ERROR "libruntime links the ONNX Runtime library of the onnxruntime wheel, but "
                        "${Python3_EXECUTABLE} cannot import onnxruntime:\n${_ort_error}\n"
                        "Install it (pip install onnxruntime) or pass -DONNXRUNTIME_LIBRARY=/path/libonnxruntime.so")
  endif()
  list(POP_FRONT _ort_probe RUNTIME_ONNXRUNTIME_VERSION)
  if(NOT _ort_probe)
    message(FATAL_ERROR "the onnxruntime ${RUNTIME_ONNXRUNTIME_VERSION} wheel has no capi/libonnxruntime.so.*; "
                        "pass -DONNXRUNTIME_LIBRARY=/path/libonnxruntime.so")
  endif()
  list(GET _ort_probe 0 RUNTIME_ONNXRUNTIME_LIBRARY)
else()
  set(RUNTIME_ONNXRUNTIME_LIBRARY "${ONNXRUNTIME_LIBRARY}")
  set(RUNTIME_ONNXRUNTIME_VERSION "unknown")
endif()

# Headers.
set(RUNTIME_ONNXRUNTIME_INCLUDE_DIR "")
foreach(_candidate IN ITEMS "${ONNXRUNTIME_ROOT}/include/onnxruntime" "${ONNXRUNTIME_ROOT}/include")
  if(ONNXRUNTIME_ROOT AND EXISTS "${_candidate}/onnxruntime_c_api.h")
    set(RUNTIME_ONNXRUNTIME_INCLUDE_DIR "${_candidate}")
    break()
  endif()
endforeach()
if(ONNXRUNTIME_ROOT AND NOT RUNTIME_ONNXRUNTIME_INCLUDE_DIR)
  message(FATAL_ERROR "ONNXRUNTIME_ROOT=${ONNXRUNTIME_ROOT} has no include/onnxruntime/onnxruntime_c_api.h")
endif()
if(NOT RUNTIME_ONNXRUNTIME_INCLUDE_DIR)
  find_path(RUNTIME_ONNXRUNTIME_SYSTEM_INCLUDE onnxruntime_c_api.h PATH_SUFFIXES onnxruntime)
  if(RUNTIME_ONNXRUNTIME_SYSTEM_INCLUDE)
    set(RUNTIME_ONNXRUNTIME_INCLUDE_DIR "${RUNTIME_ONNXRUNTIME_SYSTEM_INCLUDE}")
  endif()
endif()
if(NOT RUNTIME_ONNXRUNTIME_INCLUDE_DIR)
  set(_ort_headers "${CMAKE_BINARY_DIR}/_deps/onnxruntime-headers")
  if(NOT EXISTS "${_ort_headers}/include/onnxruntime/onnxruntime_c_api.h")
    message(STATUS "ONNX Runtime headers: fetching Debian's libonnxruntime-dev into ${_ort_headers}")
    execute_process(
      COMMAND sh "${PROJECT_SOURCE_DIR}/bindings/tools/fetch_onnxruntime_headers.sh" "${_ort_headers}"
      RESULT_VARIABLE _fetch_result)
    if(NOT _fetch_result EQUAL 0)
      message(FATAL_ERROR "could not obtain ONNX Runtime headers; install libonnxruntime-dev or pass "
                          "-DONNXRUNTIME_ROOT=<dir with include/onnxruntime>")
    endif()
  endif()
  set(RUNTIME_ONNXRUNTIME_INCLUDE_DIR "${_ort_headers}/include/onnxruntime")
endif()

# The soname link the loader and the linker look for.
set(_ort_lib_dir "${CMAKE_BINARY_DIR}/_deps/onnxruntime-lib")
file(MAKE_DIRECTORY "${_ort_lib_dir}")
file(CREATE_LINK "${RUNTIME_ONNXRUNTIME_LIBRARY}" "${_ort_lib_dir}/libonnxruntime.so.1" SYMBOLIC)

add_library(runtime::onnxruntime SHARED IMPORTED GLOBAL)
set_target_properties(runtime::onnxruntime PROPERTIES
  IMPORTED_LOCATION "${_ort_lib_dir}/libonnxruntime.so.1"
  IMPORTED_SONAME "libonnxruntime.so.1"
  INTERFACE_INCLUDE_DIRECTORIES "${RUNTIME_ONNXRUNTIME_INCLUDE_DIR}")
message(STATUS "ONNX Runtime: ${RUNTIME_ONNXRUNTIME_LIBRARY} (${RUNTIME_ONNXRUNTIME_VERSION}), "
               "headers ${RUNTIME_ONNXRUNTIME_INCLUDE_DIR}")
