// Loads the OpenVINO plugin (libruntime_openvino.so) from libruntime's own directory.
#include <dlfcn.h>

#include <mutex>
#include <string>

#include "internal.hpp"

namespace runtime::detail {
namespace {

using CreateFn = Backend* (*)(const LoadRequest*);

struct Plugin {
    CreateFn create = nullptr;
    std::string error;
};

std::string own_directory() {
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&own_directory), &info) == 0 || info.dli_fname == nullptr) return ".";
    std::string path = info.dli_fname;
    const std::size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

const Plugin& plugin() {
    static const Plugin loaded = [] {
        Plugin p;
#ifdef RUNTIME_HAVE_OPENVINO
        const std::string path = own_directory() + "/" RUNTIME_OPENVINO_PLUGIN;
        // Never closed: OpenVINO's thread pools must not be unloaded under them.
        void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) {
            const char* why = dlerror();
            p.error = "the OpenVINO backend cannot be loaded (" + std::string(why ? why : path) +
                      "); install OpenVINO: pip install 'edge-vision-sdk[openvino]'";
        } else if (auto fn = reinterpret_cast<CreateFn>(dlsym(handle, "runtime_openvino_backend_create"))) {
            p.create = fn;
        } else {
            p.error = path + " has no runtime_openvino_backend_create";
        }
#else
        p.error = "this libruntime was built without the OpenVINO backend (configure with -DRUNTIME_WITH_OPENVINO=ON)";
#endif
        return p;
    }();
    return loaded;
}

}  // namespace

bool openvino_available() { return plugin().create != nullptr; }

std::unique_ptr<Backend> make_openvino_backend(const LoadRequest& request) {
    const Plugin& p = plugin();
    if (p.create == nullptr) fail(RUNTIME_ERR_UNSUPPORTED, p.error);
    return std::unique_ptr<Backend>(p.create(&request));
}

}  // namespace runtime::detail
