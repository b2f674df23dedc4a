#!/usr/bin/env bash
# Makes sure what the build needs beyond the Rust toolchain is installed.
# Pingora builds zlib-ng with cmake. On Debian/Ubuntu as root (or with sudo) the
# missing packages are installed; elsewhere the script says what to install.
set -euo pipefail

need_pkgs=()
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
command -v c++ >/dev/null 2>&1 || need_pkgs+=(g++)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "pingora-secgw needs: ${need_pkgs[*]}. Install them (apt-get install ${need_pkgs[*]}) and retry." >&2
        exit 1
      fi
    fi
    echo "Installing ${need_pkgs[*]} (needed to build Pingora)..." >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "pingora-secgw needs: ${need_pkgs[*]} (Pingora builds zlib-ng with cmake). Install them and retry." >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "pingora-secgw needs the Rust toolchain (cargo): see https://rustup.rs" >&2
  exit 1
fi
