# Shared by the WebSocket and load benchmarks (ws-log-latency, ws-fanout, ws-stability, load-test).
# bench_binaries: a release build of both binaries in its own scratch path, unless CODERUNNER_BIN_DIR names
# binaries already; sets and exports CODERUNNER_BIN_DIR.
bench_binaries() {
    if [[ -z "${CODERUNNER_BIN_DIR:-}" ]]; then
        echo "== release build (scratch path .build-release-ws; the first one takes several minutes)" >&2
        swift build -c release --scratch-path .build-release-ws --product coderunner-controller >/dev/null
        swift build -c release --scratch-path .build-release-ws --product coderunner-agent >/dev/null
        CODERUNNER_BIN_DIR="$(swift build -c release --scratch-path .build-release-ws --show-bin-path)"
    fi
    export CODERUNNER_BIN_DIR
}

# bench_pip MODULE=REQUIREMENT...: pip-installs what is missing (e.g. websockets.sync.client=websockets>=13).
bench_pip() {
    local missing=() pair
    for pair in "$@"; do
        python3 -c "import ${pair%%=*}" 2>/dev/null || missing+=("${pair#*=}")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    echo "== pip install ${missing[*]}" >&2
    python3 -m pip install -q "${missing[@]}" 2>/dev/null || python3 -m pip install -q --break-system-packages "${missing[@]}"
}
