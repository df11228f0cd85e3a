#!/usr/bin/env bash
# Installs (through apt) and starts the system services the test suite needs when
# they are missing: a Docker engine (docker.io; a Docker *client* alone is not
# enough), debootstrap for locally built base images, Debian's docker-registry
# for push tests, HAProxy for the router, and PostgreSQL (server programs only; the
# tests run their own throwaway instance as an unprivileged user) for the
# PostgreSQL-backed Prefect and MLflow servers. Idempotent: a machine that has them
# all, with dockerd answering, is left as it is.
# --router-only: only HAProxy (what `make demo` needs for its local endpoint).
# --chromium: only Debian's chromium (what `make ui-check` drives through Playwright).
set -euo pipefail

router_only=false
[ "${1:-}" = "--router-only" ] && router_only=true
if [ "${1:-}" = "--chromium" ]; then
  if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" != 0 ]; then
      printf 'ensure-system: chromium is missing; install it as root: apt-get install chromium\n' >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends chromium >/dev/null
  fi
  printf 'ensure-system: %s\n' "$(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
  exit 0
fi

log() { printf 'ensure-system: %s\n' "$*"; }

need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
if ! $router_only; then
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
  # postgresql pulls in postgresql-<major> with initdb/postgres under /usr/lib/postgresql/<major>/bin
  # and the contrib extensions (pg_trgm, which the Prefect server needs)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing system packages: ${need[*]}; install them as root: apt-get install ${need[*]}" >&2
    exit 1
  fi
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Wait (up to 10 minutes) for another apt/dpkg run that holds the lock instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

if $router_only; then
  log "haproxy $(haproxy -v | head -1 | awk '{print $3}')"
  exit 0
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  # Service starts are disabled on these machines: run the daemon ourselves.
  nohup dockerd >"${DOCKERD_LOG:-/var/log/dockerd-mlops-tasks.log}" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    log "dockerd did not answer within 60 s; see ${DOCKERD_LOG:-/var/log/dockerd-mlops-tasks.log}" >&2
    exit 1
  fi
fi
log "docker engine $(docker version --format '{{.Server.Version}}'), haproxy $(haproxy -v | head -1 | awk '{print $3}')"
