#!/usr/bin/env bash
# What the load benchmarks run besides the gateway: nginx and wrk (Debian),
# installed when missing, without starting the packaged nginx service.
# `tools.sh valgrind`, `tools.sh perf` and `tools.sh heaptrack` add those profilers
# (Debian's valgrind, linux-perf and heaptrack packages).
set -euo pipefail
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
for tool in "$@"; do
  case "$tool" in
    valgrind) command -v callgrind_control >/dev/null 2>&1 || missing+=(valgrind) ;;
    perf) command -v perf >/dev/null 2>&1 || missing+=(linux-perf) ;;
    heaptrack) command -v heaptrack_print >/dev/null 2>&1 || missing+=(heaptrack) ;;
    *) echo "benches/tools.sh: unknown tool $tool" >&2; exit 2 ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the benchmarks need: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  # The packaged nginx service is not wanted (it would take port 80): Debian's
  # policy-rc.d hook with exit code 101 keeps package scripts from starting it.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # An `&&` list as the last command would make the script fail when the image
  # already had its own policy-rc.d.
  if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
