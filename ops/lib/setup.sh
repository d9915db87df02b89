# Shared by ops/run and ops/test: checks for what the build needs and installs
# what is missing: a Rust toolchain (required), a C and C++ compiler
# (mimalloc and ring build C, RocksDB builds C++), protoc (the gateway
# generates its protocol types from gateway/proto/casino.proto), libclang
# (bindgen generates RocksDB's Rust bindings with it), a font (the
# simulator's latency plot draws its text with DejaVu Sans).
ensure_toolchain() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: install Rust (rustup) first" >&2
        exit 1
    fi
    if ! command -v cc >/dev/null 2>&1; then
        apt_install build-essential
    fi
    if ! command -v c++ >/dev/null 2>&1; then
        apt_install build-essential
    fi
    if ! command -v protoc >/dev/null 2>&1; then
        apt_install protobuf-compiler
    fi
    if [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
        apt_install fonts-dejavu-core
    fi
    if ! compgen -G "/usr/lib/llvm-*/lib/libclang-[0-9]*.so*" >/dev/null && ! compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null; then
        apt_install libclang-dev
    fi
}

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing system packages: $* (run as root, or install them)" >&2
        exit 1
    fi
    if [ -z "${APT_UPDATED:-}" ]; then
        apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
