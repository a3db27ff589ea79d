#!/bin/sh
# Obtain ONNX Runtime's C/C++ headers without any download outside the Debian
# archive: the onnxruntime wheel ships the library but no headers, and Debian's
# `libonnxruntime-dev` (suite trixie) carries them. The mirror is the one this
# machine's apt is already configured with; apt runs with a private state dir so
# the system's sources, lists and package database are left untouched.
#
# Usage: fetch_onnxruntime_headers.sh DEST_DIR
#   DEST_DIR/include/onnxruntime/onnxruntime_c_api.h ... on success.
set -eu

DEST=${1:?usage: fetch_onnxruntime_headers.sh DEST_DIR}
SUITE=${ORT_HEADERS_SUITE:-trixie}
PACKAGE=libonnxruntime-dev

if [ -f "$DEST/include/onnxruntime/onnxruntime_c_api.h" ]; then
    exit 0
fi

# The first Debian archive URI in the configured sources (deb822 or one-line),
# skipping the security archive, whose layout differs.
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    mirror=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' "$f" | grep -v -- '-security' | grep '/debian/*$' | head -n1 || true)
    [ -n "$mirror" ] && break
done
if [ -z "$mirror" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        mirror=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }' "$f" \
            | grep -v -- '-security' | grep '/debian/*$' | head -n1 || true)
        [ -n "$mirror" ] && break
    done
fi
if [ -z "$mirror" ]; then
    echo "fetch_onnxruntime_headers: no Debian mirror found in /etc/apt/sources.list(.d);" \
         "pass -DONNXRUNTIME_ROOT=<dir with include/onnxruntime> instead" >&2
    exit 1
fi

work="$DEST/apt"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/etc/preferences.d" "$DEST/deb"
: > "$work/status"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cat > "$work/etc/sources.list" <<SOURCES
deb [signed-by=$keyring] $mirror $SUITE main
SOURCES

arch=$(dpkg --print-architecture)
set -- -o "Dir::Etc::SourceList=$work/etc/sources.list" -o "Dir::Etc::SourceParts=/nonexistent" \
       -o "Dir::Etc::PreferencesParts=$work/etc/preferences.d" -o "Dir::State::Lists=$work/lists" \
       -o "Dir::State::status=$work/status" -o "Dir::Cache=$work/cache" -o "APT::Architecture=$arch" \
       -o "APT::Architectures=$arch" -o "Acquire::Languages=none" -o "Debug::NoLocking=1" \
       -o "APT::Sandbox::User=$(id -un)"

echo "fetch_onnxruntime_headers: $PACKAGE from $mirror ($SUITE)" >&2
apt-get "$@" -qq update
(cd "$DEST/deb" && apt-get "$@" -qq download "$PACKAGE")
deb=$(ls "$DEST/deb/${PACKAGE}"_*.deb | head -n1)

extract="$DEST/deb/root"
rm -rf "$extract"
dpkg-deb -x "$deb" "$extract"
if [ ! -f "$extract/usr/include/onnxruntime/onnxruntime_c_api.h" ]; then
    echo "fetch_onnxruntime_headers: $deb has no usr/include/onnxruntime/onnxruntime_c_api.h" >&2
    exit 1
fi
# Keep only the headers: the package's library symlinks point at a runtime
# package we do not install (the wheel's library is the one linked).
mkdir -p "$DEST/include"
rm -rf "$DEST/include/onnxruntime"
cp -R "$extract/usr/include/onnxruntime" "$DEST/include/onnxruntime"
dpkg-deb -f "$deb" Version > "$DEST/VERSION"
rm -rf "$extract" "$work" "$DEST/deb"
echo "fetch_onnxruntime_headers: headers $(cat "$DEST/VERSION") in $DEST/include/onnxruntime" >&2
