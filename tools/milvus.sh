#!/usr/bin/env bash
# A real Milvus 2.3.5 standalone server for vitrine's Milvus tests, from PyPI's `milvus` package
# (it bundles the same server binaries a Docker or Helm deployment runs).
#   tools/milvus.sh start DIR   installs it (once, in a cached venv), starts it on a free loopback
#                               port with a fresh data folder under DIR, waits until it answers,
#                               and prints the backend URL (milvus://127.0.0.1:PORT)
#   tools/milvus.sh stop DIR    stops it and waits until it is gone
# Notes on its quirks: ../shared/notes/milvus.md (and ARCHITECTURE.md).
set -euo pipefail
cmd="${1:?start|stop}"; dir="${2:?a working folder}"
VENV="${VITRINE_MILVUS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vitrine/milvus-2.3.5-venv}"
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "$cmd" in
start)
  [ "$(uname -m)" = x86_64 ] || { echo "the milvus wheel bundles x86-64 binaries only" >&2; exit 2; }
  if [ ! -x "$VENV/bin/milvus-server" ]; then
    echo "installing milvus==2.3.5 into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check milvus==2.3.5 >&2
  fi
  # Its embedded etcd always binds 2379/2380: a second server on this machine cannot start.
  port_free 2379 || { echo "port 2379 is taken (another Milvus or etcd is running)" >&2; exit 2; }
  port=19541
  while ! port_free "$port"; do port=$((port + 1)); done
  mkdir -p "$dir"; rm -rf "$dir/data"; mkdir "$dir/data"
  # Its own session, so a server that never got ready can be killed with all its children.
  PYTHONUNBUFFERED=1 setsid "$VENV/bin/milvus-server" --data "$dir/data" --proxy-port "$port" >"$dir/milvus.log" 2>&1 &
  echo $! >"$dir/milvus.pid"
  for _ in $(seq 1 240); do
    if python3 -c 'import sys, urllib.request as u; sys.exit(b"\"code\":200" not in u.urlopen(sys.argv[1], timeout=2).read())' \
      "http://127.0.0.1:$port/v1/vector/collections" 2>/dev/null; then
      echo "milvus://127.0.0.1:$port"; exit 0
    fi
    kill -0 "$(cat "$dir/milvus.pid")" 2>/dev/null || break
    sleep 0.5
  done
  echo "milvus did not start; its log:" >&2; tail -30 "$dir/milvus.log" >&2
  "$0" stop "$dir"; exit 1
  ;;
stop)
  [ -f "$dir/milvus.pid" ] || exit 0
  pid="$(cat "$dir/milvus.pid")"
  kill -INT "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  # Still there (a SIGINT before it was ready is ignored): end its whole session.
  kill -KILL -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do port_free 2379 && break; sleep 0.2; done
  rm -f "$dir/milvus.pid"
  ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
