#!/usr/bin/env bash
# Install everything slayer console and its tests need on a fresh Debian machine (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
# The tests use a real sshd, PostgreSQL, hunspell-pl and tmux; without them CI would only skip those tests.
if ! command -v apt-get >/dev/null; then
  echo ".ci/install.sh: no apt-get here; install openssh-server postgresql hunspell-pl tmux util-linux" \
       "with this machine's package manager, then run the tests" >&2
  exit 1
fi
need=()
for pkg in openssh-server postgresql hunspell-pl tmux util-linux bubblewrap; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# CPU torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[test]"
