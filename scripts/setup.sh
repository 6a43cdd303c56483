#!/usr/bin/env bash
# One idempotent setup path for PeftDsl on a stock Debian 12 machine (and anything newer).
#
# TorchSharp 0.107's libLibTorchSharp.so imports one symbol versioned GLIBCXX_3.4.32 (GCC 13+).
# Debian 12 ships GCC 12's libstdc++ (3.4.30), so the first torch call would fail with
# DllNotFoundException. We install Debian 13's libstdc++6 (tested: the .NET SDK keeps working).
# A machine that already has the version is left untouched.
set -euo pipefail

say() { printf 'peft setup: %s\n' "$*"; }

has_glibcxx_3_4_32() {
  local lib
  lib=$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 /{print $NF; exit}')
  [ -n "$lib" ] && grep -qa 'GLIBCXX_3\.4\.32' "$lib"
}

ensure_libstdcxx() {
  if has_glibcxx_3_4_32; then
    return 0
  fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing GLIBCXX_3.4.32 (GCC 13+ libstdc++), needed by TorchSharp's native library; run 'sudo scripts/setup.sh' on Debian, or install libstdc++6 from GCC 13 or newer" >&2
    return 1
  fi
  if ! grep -qs '^ID=debian' /etc/os-release; then
    say "missing GLIBCXX_3.4.32 (GCC 13+ libstdc++) and this is not Debian; install libstdc++6 from GCC 13 or newer with your package manager" >&2
    return 1
  fi
  say "installing libstdc++6 from Debian 13 (trixie), pinned so nothing else upgrades"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    > /etc/apt/sources.list.d/trixie.sources
  printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie-pin
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t trixie libstdc++6 >/dev/null 2>&1; }; then
    say "could not install libstdc++6 from Debian 13 (apt-get failed; is deb.debian.org reachable?); TorchSharp needs GLIBCXX_3.4.32" >&2
    return 1
  fi
  has_glibcxx_3_4_32 || { say "libstdc++6 was installed but still lacks GLIBCXX_3.4.32" >&2; return 1; }
}

# Data-parallel training (docs/distributed.md) binds MPICH's ABI; its tests launch with mpiexec.mpich.
ensure_mpich() {
  if command -v mpiexec.mpich >/dev/null 2>&1; then
    return 0
  fi
  # Only the distributed-training tests need it: without it the rest of the setup goes on, and those tests say so.
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "MPICH (mpiexec.mpich) is missing; the distributed-training tests need it: run 'sudo scripts/setup.sh' on Debian, or install mpich" >&2
    return 0
  fi
  say "installing Debian's mpich"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mpich >/dev/null 2>&1; }; then
    say "could not install mpich (apt-get failed; is deb.debian.org reachable?); the distributed-training tests need it" >&2
  fi
}

ensure_libstdcxx
ensure_mpich
cd "$(dirname "$0")/.."
dotnet restore PeftDsl.sln --verbosity quiet
