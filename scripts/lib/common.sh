# shellcheck shell=bash
# Shared helpers for the project's scripts: virtualenv, docker engine, base images.
# Every function is idempotent and cheap when its work is already done.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE_DIR="${DJANGOPROD_STATE_DIR:-/var/cache/djangoprod}"
VENV="${DJANGOPROD_VENV:-$ROOT/.venv}"
IMAGE_PREFIX="${DJANGOPROD_IMAGE_PREFIX:-djangoprod-debian}"
export STATE_DIR VENV IMAGE_PREFIX ROOT

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "run as root (installs packages, starts dockerd, runs debootstrap)"
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  if [ ! -f "$STATE_DIR/.apt-updated" ] || [ -n "$(find "$STATE_DIR/.apt-updated" -mmin +360)" ]; then
    apt-get update -qq
    mkdir -p "$STATE_DIR" && touch "$STATE_DIR/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_venv() {
  local req="$ROOT/requirements.txt" stamp="$VENV/.requirements.sha256" sum
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
    return 0
  fi
  apt_install python3-venv python3-pip git rsync
  log "virtualenv $VENV (pinned tools from requirements.txt)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -r "$req"
  echo "$sum" > "$stamp"
}

ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  need_root
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    systemctl start docker || true
  fi
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: /var/log/dockerd.log)"
    # In a session of its own: the engine outlives the command that happened to start it.
    setsid nohup dockerd >>/var/log/dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
  fi
  docker info >/dev/null 2>&1 || die "docker engine did not start; see /var/log/dockerd.log"
}

# The mirror comes from the host's own apt sources, never from this repository.
host_mirror() {
  local uri
  uri=$(grep -hE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  [ -n "$uri" ] || uri=$(grep -hE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -v -- '-security' | awk '{for(i=2;i<=NF;i++) if ($i ~ /:\/\//) {print $i; exit}}' | head -n1 || true)
  [ -n "$uri" ] || die "no Debian mirror found in the host's apt sources"
  echo "$uri"
}

codename_for() {
  case "$1" in
    13) echo trixie ;;
    12) echo bookworm ;;
    *) die "unsupported Debian release '$1' (13 or 12)" ;;
  esac
}

# Build (once) a systemd-capable Debian image by debootstrap + docker import.
ensure_image() {
  local release="$1" codename tag rootfs mirror host_codename recipe
  tag="$IMAGE_PREFIX:$release"
  # A change to this recipe rebuilds the image; otherwise it is built once and reused.
  recipe=$(declare -f ensure_image | sha256sum | cut -c1-12)
  [ "$(docker image inspect -f '{{ index .Config.Labels "djangoprod.recipe" }}' "$tag" 2>/dev/null)" = "$recipe" ] \
    && return 0
  need_root
  apt_install debootstrap
  codename=$(codename_for "$release")
  mirror=$(host_mirror)
  host_codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  rootfs=$(mktemp -d "/var/tmp/djangoprod-rootfs-$release.XXXXXX")
  log "debootstrap $codename into $rootfs (one-time, about a minute)"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,python3,python3-apt,sudo,ca-certificates,iproute2,procps \
    "$codename" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" >&2; die "debootstrap $codename failed"; }
  # apt sources: the host's files with the suite renamed to this release.
  : > "$rootfs/etc/apt/sources.list"
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    grep -qE 'debian' "$f" || continue
    sed -E "s/\b${host_codename}\b/${codename}/g" "$f" > "$rootfs/etc/apt/sources.list.d/$(basename "$f")"
  done
  if [ -f /etc/apt/sources.list ] && grep -qE '^\s*deb\s' /etc/apt/sources.list; then
    sed -E "s/\b${host_codename}\b/${codename}/g" /etc/apt/sources.list > "$rootfs/etc/apt/sources.list"
  fi
  # The host's CA bundle joins the image's trust store (pip over HTTPS inside containers).
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/usr/local/share/ca-certificates/host-bundle.crt"
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || true
  # Downloads are cached in a host folder mounted by the test harness.
  printf '[global]\ncache-dir = /var/cache/pip\n' > "$rootfs/etc/pip.conf"
  mkdir -p "$rootfs/var/cache/pip" && chmod 1777 "$rootfs/var/cache/pip"
  rm -f "$rootfs/etc/apt/apt.conf.d/docker-clean"
  echo 'APT::Keep-Downloaded-Packages "true";' > "$rootfs/etc/apt/apt.conf.d/10keep-downloads"
  # As in Docker's own Debian images: dpkg skips its fsync per unpacked file. A test container
  # is thrown away, never recovered after a crash, and unpacking is most of a first converge.
  echo 'force-unsafe-io' > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  # Nothing a container does not need at boot.
  for unit in systemd-firstboot.service systemd-udevd.service systemd-modules-load.service \
              sys-kernel-config.mount sys-kernel-debug.mount getty.target console-getty.service; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
  done
  echo "$release" > "$rootfs/etc/djangoprod-image"
  # Package lists stay, as on any installed server: apt's cache_valid_time refreshes them
  # once they are older than the roles allow.
  chroot "$rootfs" apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed inside the $codename root"
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb
  log "docker import $tag"
  tar -C "$rootfs" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' -c "LABEL djangoprod.recipe=$recipe" \
    - "$tag" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
}

# Host folders shared by every test container, so packages download once.
ensure_caches() {
  local r
  for r in 13 12; do mkdir -p "$STATE_DIR/apt/$r/partial"; done
  mkdir -p "$STATE_DIR/pip"
  chmod 1777 "$STATE_DIR/pip"
}

bootstrap_all() {
  need_root
  ensure_venv
  ensure_docker
  ensure_caches
  local r
  for r in ${DJANGOPROD_RELEASES:-13 12}; do ensure_image "$r"; done
}

# The collection resolves by FQCN from this checkout (no install step between edits and runs).
ensure_collection_link() {
  local dir="$ROOT/.cache/collections/ansible_collections/djangoprod"
  mkdir -p "$dir"
  [ -L "$dir/stack" ] && [ "$(readlink "$dir/stack")" = "$ROOT" ] && return 0
  rm -rf "$dir/stack"
  ln -s "$ROOT" "$dir/stack"
}

# Environment for ansible, molecule and pytest run from the repository root.
tool_env() {
  ensure_collection_link
  export PATH="$VENV/bin:$PATH"
  export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
  # This checkout first, then the collections the ansible package bundles.
  ANSIBLE_COLLECTIONS_PATH="$ROOT/.cache/collections:$("$VENV/bin/python" -c 'import ansible_collections, os; print(os.path.dirname(ansible_collections.__path__[0]))')"
  export ANSIBLE_COLLECTIONS_PATH
  export ANSIBLE_HOME="$ROOT/.cache/ansible"
  export ANSIBLE_LOCAL_TEMP="$ROOT/.cache/ansible/tmp"
  export MOLECULE_GLOB="molecule/*/molecule.yml"
  export DJANGOPROD_APT_CACHE="${DJANGOPROD_APT_CACHE:-$STATE_DIR/apt}"
  export DJANGOPROD_PIP_CACHE="${DJANGOPROD_PIP_CACHE:-$STATE_DIR/pip}"
  export PY_COLORS=1 ANSIBLE_FORCE_COLOR=1
  [ -n "${CI:-}" ] && export PY_COLORS=0 ANSIBLE_FORCE_COLOR=0
  mkdir -p "$ANSIBLE_LOCAL_TEMP" "$DJANGOPROD_APT_CACHE/13/partial" "$DJANGOPROD_APT_CACHE/12/partial" "$DJANGOPROD_PIP_CACHE"
  chmod 1777 "$DJANGOPROD_PIP_CACHE"
  return 0
}

# A systemd container shaped like a small VPS, for the demo and the benchmarks.
# start_stack_container NAME RELEASE [docker run options...]
# The opt-in fast path: Mitogen's strategy for the ansible-playbook runs of this shell. Mitogen
# takes over the ssh and docker connections (ansible_connection: docker, not the
# community.docker.docker name) and keeps one Python interpreter per host for the whole run.
mitogen_env() {
  local dir
  dir=$("$VENV/bin/python" -c 'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))') ||
    die "mitogen is not installed in $VENV (requirements.txt)"
  export ANSIBLE_STRATEGY_PLUGINS="$dir/plugins/strategy" ANSIBLE_STRATEGY=mitogen_linear
}

start_stack_container() {
  local name="$1" release="$2"; shift 2
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker run -d --name "$name" --hostname "$name" \
    --cap-add SYS_ADMIN --cgroupns host \
    --tmpfs /run --tmpfs /run/lock \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    -v "$DJANGOPROD_APT_CACHE/$release:/var/cache/apt/archives:rw" \
    -v "$DJANGOPROD_PIP_CACHE:/var/cache/pip:rw" \
    "$@" "$IMAGE_PREFIX:$release" /lib/systemd/systemd >/dev/null
  for _ in $(seq 1 30); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) return 0 ;; esac
    sleep 1
  done
  die "container $name did not boot systemd (state: ${state:-unknown})"
}

# write_stack_inventory DIR HOST: DIR/inventory, an inventory for one container in every group of
# the small tier (the example inventory's variables and a generated vault), and the vault's
# password in DIR/vault-password (outside the inventory directory, which Ansible reads whole).
write_stack_inventory() {
  local dir="$1/inventory" pass="$1/vault-password" host="$2"
  mkdir -p "$dir/group_vars/all" "$dir/host_vars"
  cat > "$dir/hosts.yml" <<YAML
---
all:
  hosts:
    $host:
      ansible_connection: community.docker.docker
      ansible_host: $host
  children:
    web: {hosts: {$host: {}}}
    app: {hosts: {$host: {}}}
    worker: {hosts: {$host: {}}}
    beat: {hosts: {$host: {}}}
    postgres_primary: {hosts: {$host: {}}}
    redis: {hosts: {$host: {}}}
YAML
  ln -sfn "$ROOT/inventories/small/group_vars/all/main.yml" "$dir/group_vars/all/main.yml"
  if [ ! -f "$pass" ]; then
    (umask 077; python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$pass")
  fi
  if [ ! -f "$dir/group_vars/all/vault.yml" ]; then
    python3 - <<'PY' | "$VENV/bin/ansible-vault" encrypt --vault-password-file "$pass" \
        --output "$dir/group_vars/all/vault.yml" - >/dev/null
import secrets
def token(n):
    return secrets.token_urlsafe(n)
print("---")
print(f"vault_stack_secret_key: {token(48)}")
print(f"vault_stack_db_password: {token(24)}")
print(f"vault_stack_redis_cache_password: {token(24)}")
print(f"vault_stack_redis_broker_password: {token(24)}")
print(f"vault_demo_admin_password: {token(12)}")
PY
  fi
}
