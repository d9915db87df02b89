# Shared by ops/run and ops/test: checks for what the build needs and installs
# what is missing: a Rust toolchain (required), a C and C++ compiler
# (mimalloc and ring build C, RocksDB builds C++), protoc (the gateway
# generates its protocol types from gateway/proto/casino.proto), libclang
# (bindgen generates RocksDB's Rust bindings with it), a font (the
# simulator's latency plot draws its text with DejaVu Sans), and for the
# tests Schemathesis (below).
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

# Schemathesis (from PyPI), which checks the running node's PAM API against
# ../shared/specs/pam_api.yml in the test suite. Installed once into a
# virtual environment beside the build output; SCHEMATHESIS names it.
SCHEMATHESIS_VERSION=4.32.5
ensure_schemathesis() {
    local target="${CARGO_TARGET_DIR:-$PWD/target}"
    local venv="$target/schemathesis-$SCHEMATHESIS_VERSION"
    if [ ! -x "$venv/bin/schemathesis" ]; then
        if ! command -v python3 >/dev/null 2>&1; then
            apt_install python3 python3-venv
        fi
        if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
            apt_install python3-venv
        fi
        mkdir -p "$target"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    fi
    export SCHEMATHESIS="$venv/bin/schemathesis"
}
