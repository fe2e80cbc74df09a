#!/usr/bin/env bash
# Installs what cricket needs on a fresh Debian 12 machine. Idempotent: what is present is
# skipped, and `apt-get update` runs only when a package is missing. Safe to call from every
# entry point (README commands, .ci/run, ci/ scripts).
#
#   bash ci/setup.sh          what `cricket run` needs
#   bash ci/setup.sh --test   that, plus what the test suite needs (`cargo test`)
set -euo pipefail
cd "$(dirname "$0")/.."

test_tools=false
for arg in "$@"; do
  case "$arg" in
    --test) test_tools=true ;;
    *) echo "ci/setup.sh: unknown argument $arg (known: --test)" >&2; exit 2 ;;
  esac
done

# containerd + runc: the `--target containerd` runtime and its OCI runtime.
# containernetworking-plugins: the CNI bridge/host-local/portmap/loopback plugins containerd uses.
# iptables: the portmap plugin maps containerd's pods' host ports with it.
# iproute2: `ip` for network namespace checks. ca-certificates: crates.io over TLS on bare images.
packages=(containerd runc containernetworking-plugins iptables iproute2 ca-certificates)
if $test_tools; then
  # skopeo, docker-registry: third-party OCI clients and a real registry the fixture tests check
  # cricket's images, registry and `images push` against. Neither starts a service on install.
  # g++: libfuzzer-sys compiles libFuzzer for the cargo-fuzz targets under fuzz/.
  # python3-venv: the virtual environment of the Python test clients.
  packages+=(skopeo docker-registry g++ python3-venv)
  # Node and npm: the SPDY test client (npm's spdy-transport). A Node from elsewhere (say,
  # NodeSource's nodejs, which carries its own npm) is used as it is.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    packages+=(nodejs npm)
  fi
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ci/setup.sh: missing Debian packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 2
  fi
  echo "ci/setup.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Debian containerd package ships a systemd unit; cricket never uses the system instance
# (each run starts its own with a private config), so nothing is enabled or started here.

$test_tools || exit 0

# cargo-fuzz: the test suite smoke-runs every target under fuzz/ (stable toolchain, -s none).
if ! command -v cargo-fuzz >/dev/null 2>&1 && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "ci/setup.sh: installing cargo-fuzz (cargo install)" >&2
  cargo install cargo-fuzz --locked --quiet
fi

# Python test clients (grpcio, ...), pinned, in a virtual environment of their own. The stamp
# holds the requirements it was made from: a changed list rebuilds it.
venv=ci/.venv
req=ci/requirements-test.txt
if ! cmp -s "$req" "$venv/.requirements" 2>/dev/null; then
  echo "ci/setup.sh: creating $venv from $req" >&2
  rm -rf "$venv"
  py=python3
  if ! "$py" -m venv --help >/dev/null 2>&1; then py=/usr/bin/python3; fi
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req"
  cp "$req" "$venv/.requirements"
fi

# Node test clients (spdy-transport), pinned with every dependency by ci/node/package-lock.json,
# in ci/node/node_modules. The stamp is the lock it was installed from.
lock=ci/node/package-lock.json
if ! cmp -s "$lock" ci/node/node_modules/.cricket-lock 2>/dev/null; then
  echo "ci/setup.sh: installing ci/node from $lock (npm ci)" >&2
  (cd ci/node && npm ci --no-audit --no-fund --loglevel=error)
  cp "$lock" ci/node/node_modules/.cricket-lock
fi
