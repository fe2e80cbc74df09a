#!/usr/bin/env bash
# Installs the Debian packages cricket needs on a fresh machine. Idempotent: packages already
# present are skipped, and `apt-get update` runs only when something is missing. Safe to call
# from every entry point (README commands, .ci/run, ci/ scripts).
set -euo pipefail

# containerd + runc: the `--target containerd` runtime and its OCI runtime.
# containernetworking-plugins: the CNI bridge/host-local/portmap/loopback plugins containerd uses.
# iproute2: `ip` for network namespace checks. ca-certificates: crates.io over TLS on bare images.
# skopeo, docker-registry: third-party OCI clients and a real registry the fixture tests check
# cricket's images, registry and `images push` against. Neither starts a service on install.
# g++: libfuzzer-sys compiles libFuzzer for the cargo-fuzz targets under fuzz/.
packages=(containerd runc containernetworking-plugins iproute2 ca-certificates skopeo docker-registry g++)

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

# cargo-fuzz: the test suite smoke-runs every target under fuzz/ (stable toolchain, -s none).
if ! command -v cargo-fuzz >/dev/null 2>&1 && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "ci/setup.sh: installing cargo-fuzz (cargo install)" >&2
  cargo install cargo-fuzz --locked --quiet
fi
