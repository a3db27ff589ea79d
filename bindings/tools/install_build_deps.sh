#!/bin/sh
# Debian packages libruntime's build and its C++ tests need: OpenSSL's libcrypto
# (graph sha256), nlohmann-json (manifest), libtiff (example host), valgrind
# (`make valgrind`); or the packages named as arguments (`make fuzz`: clang-14
# libclang-rt-14-dev, for libFuzzer, which gcc lacks). Installs only what is
# missing, so a second run costs nothing and never touches the network. Needs
# root (or sudo) for the first run.
set -eu

PACKAGES="${*:-libssl-dev nlohmann-json3-dev libtiff-dev valgrind pkg-config}"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_build_deps: missing Debian packages:$missing (run as root: apt-get install$missing)" >&2
        exit 1
    fi
fi

echo "install_build_deps: installing$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
