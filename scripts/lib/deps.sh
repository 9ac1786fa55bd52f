# Shared by scripts/test and scripts/quickstart: install the Debian packages CodeRunner needs, only when missing.
# Usage: . scripts/lib/deps.sh; ensure_apt_packages pkg...
ensure_apt_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Python modules from PyPI, only when missing: ensure_python_packages MODULE=SPEC... (e.g. websockets.sync.client='websockets>=13').
ensure_python_packages() {
    python3 -m pip --version >/dev/null 2>&1 || ensure_apt_packages python3-pip
    local missing=()
    for pair in "$@"; do
        python3 -c "import ${pair%%=*}" 2>/dev/null || missing+=("${pair#*=}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "==> pip install ${missing[*]}"
    python3 -m pip install -q "${missing[@]}" 2>/dev/null || python3 -m pip install -q --break-system-packages "${missing[@]}"
}

# Build dependencies of both binaries.
BUILD_PACKAGES=(pkg-config libcurl4-openssl-dev libssl-dev libmicrohttpd-dev libsqlite3-dev libseccomp-dev)
# Tools the tests drive for real: promtool checks /metrics, stress-ng burns a known CPU share, python3 and sh
# play apps, sqlite3 edits a database behind the controller's back, script(1) gives the agent a terminal,
# openssl makes test CAs and certificates, socat terminates TLS in front of the (plain HTTP) controller;
# bubblewrap builds the apps' sandboxes.
TEST_PACKAGES=(prometheus stress-ng procps python3 curl sqlite3 bsdutils util-linux openssl socat bubblewrap)
# PostgreSQL's server binaries for the store suite (TestPostgres runs its own initdb; Debian's cluster is not used).
TEST_PACKAGES+=(postgresql)
# iproute2 (ip netns, veth): the cluster test cuts a controller's link to PostgreSQL inside a namespace it makes.
TEST_PACKAGES+=(iproute2)
