#!/usr/bin/env bash
# Installs a built pos-token-agent release onto a POS box (or removes it). See --help.
set -eu
set -o pipefail

NAME=pos-token-agent
SERVICE_USER=pos-token-agent
CLIENT_GROUP=pos-token-clients

usage() {
  cat <<'EOF'
Usage: install.sh [options]
       install.sh --uninstall [--purge] [options]

Installs a built pos-token-agent release (dist/ and production node_modules/ next to this
script's folder) onto this machine, or removes it. Run as root. Safe to run again: an
upgrade replaces the program files and keeps the config, the credentials and the state.
The release tarball (pos-token-agent-VERSION-linux-ARCH.tar.gz, from npm run package)
carries its own Node.js runtime in node/: then the box needs no Node.js at all.

What it installs:
  PREFIX (/opt/pos-token-agent)        dist, node_modules (production only), package.json,
                                       device-profiles, systemd, scripts, README.md, docs (the
                                       guides; the units' Documentation= names
                                       docs/technicians.md), and the release's own runtime
                                       (node/) when it has one
  /etc/systemd/system/                 pos-token-agent.service, pos-token-agent.socket
  /etc/sysusers.d/, /etc/tmpfiles.d/   pos-token-agent.conf (user, groups, directories)
  /usr/local/bin/pos-token-agent       the command (a wrapper around node)
  /usr/local/sbin/pos-token-agent-provision   the technician's provisioning script
  /etc/pos-token-agent/config.json     a skeleton, only if there is none (0640 root:pos-token-agent)
  /var/lib/pos-token-agent/            state directory (0700 pos-token-agent)
and creates the system user and group pos-token-agent and the group pos-token-clients
(till software allowed on the socket), runs systemctl daemon-reload and enables
pos-token-agent.socket. On a fresh box it does not start the agent: run
pos-token-agent-provision next. An upgrade restarts a running agent; a reinstall over kept
state (after --uninstall) enables and starts it again.

Options:
  --prefix DIR        install the program under DIR (default /opt/pos-token-agent)
  --source DIR        the release to install (default: the folder above this script)
  --node PATH         the node binary (>= 20) the service and the wrapper use (default:
                      the release's own runtime, PREFIX/node/bin/node; else node on PATH)
  --client-user USER  add USER (the till software's user) to pos-token-clients; repeatable
  --root DIR          install into DIR as if it were / (images, tests): no systemctl,
                      users are created in DIR/etc with systemd-sysusers --root when run
                      as root; the commands it skips are printed
  --no-systemctl      do not run systemctl (print what would run)
  --no-users          do not create users and groups (they must exist)
  --uninstall         stop and disable the units, remove the program, units, snippets and
                      wrappers; keeps /etc/pos-token-agent and /var/lib/pos-token-agent
  --purge             with --uninstall: also remove the config and the state (credentials,
                      tokens, key). The users and groups are kept.
  -h, --help          this text

Exit status: 0 done, 1 failed, 2 usage error.
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }
usage_error() { echo "install.sh: $*" >&2; echo "See: install.sh --help" >&2; exit 2; }
say() { echo "$*"; }

ROOT=""
PREFIX=/opt/$NAME
SOURCE=""
NODE=""
MODE=install
PURGE=0
SYSTEMCTL=1
USERS=1
CLIENT_USERS=()
UNIT_DIR=/etc/systemd/system
BIN_DIR=/usr/local/bin
SBIN_DIR=/usr/local/sbin

need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || usage_error "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) need_arg "$@"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --source) need_arg "$@"; SOURCE=$2; shift 2 ;;
    --source=*) SOURCE=${1#*=}; shift ;;
    --node) need_arg "$@"; NODE=$2; shift 2 ;;
    --node=*) NODE=${1#*=}; shift ;;
    --root) need_arg "$@"; ROOT=$2; shift 2 ;;
    --root=*) ROOT=${1#*=}; shift ;;
    --client-user) need_arg "$@"; CLIENT_USERS+=("$2"); shift 2 ;;
    --client-user=*) CLIENT_USERS+=("${1#*=}"); shift ;;
    --no-systemctl) SYSTEMCTL=0; shift ;;
    --no-users) USERS=0; shift ;;
    --uninstall) MODE=uninstall; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage_error "unknown option $1" ;;
  esac
done

[ "$PURGE" = 0 ] || [ "$MODE" = uninstall ] || usage_error "--purge goes with --uninstall"
case "$PREFIX" in
  /*) ;;
  *) usage_error "--prefix must be an absolute path" ;;
esac
PREFIX=${PREFIX%/}
case "$PREFIX" in
  ''|/|/usr|/usr/local|/opt|/etc|/var|/bin|/sbin|/lib) usage_error "--prefix $PREFIX is not a folder of its own" ;;
esac
if [ -n "$ROOT" ]; then
  case "$ROOT" in
    /*) ;;
    *) ROOT=$(pwd)/$ROOT ;;
  esac
  ROOT=${ROOT%/}
  [ -d "$ROOT" ] || die "--root $ROOT is not a directory"
  SYSTEMCTL=0
fi
R=$ROOT
IS_ROOT=0
[ "$(id -u)" = 0 ] && IS_ROOT=1
if [ -z "$ROOT" ] && [ "$IS_ROOT" = 0 ]; then die "run as root (or use --root DIR for a staging tree)"; fi

# --- users and groups --------------------------------------------------------------------

# Looks a name up in the target's passwd/group files: the host's via getent, a --root tree's directly.
lookup_id() { # file name
  if [ "$2" = root ]; then
    echo 0
  elif [ -z "$ROOT" ]; then
    getent "$1" "$2" | cut -d: -f3
  elif [ -f "$R/etc/$1" ]; then
    awk -F: -v n="$2" '$1 == n { print $3; exit }' "$R/etc/$1"
  fi
}
uid_of() { lookup_id passwd "$1"; }
gid_of() { lookup_id group "$1"; }

create_users() {
  [ "$USERS" = 1 ] || return 0
  if [ -n "$ROOT" ] && [ "$IS_ROOT" = 0 ]; then
    say "skipped (not root): creating the user $SERVICE_USER and the group $CLIENT_GROUP in $ROOT"
    return 0
  fi
  if command -v systemd-sysusers >/dev/null 2>&1; then
    if [ -n "$ROOT" ]; then
      systemd-sysusers --root="$ROOT" "$NAME.conf" >/dev/null
    else
      systemd-sysusers "/etc/sysusers.d/$NAME.conf" >/dev/null
    fi
    return 0
  fi
  local rootopt=()
  [ -z "$ROOT" ] || rootopt=(--root "$ROOT")
  [ -n "$(gid_of "$CLIENT_GROUP")" ] || groupadd "${rootopt[@]}" --system "$CLIENT_GROUP"
  [ -n "$(gid_of "$SERVICE_USER")" ] || groupadd "${rootopt[@]}" --system "$SERVICE_USER"
  [ -n "$(gid_of dialout)" ] || groupadd "${rootopt[@]}" --system dialout
  if [ -z "$(uid_of "$SERVICE_USER")" ]; then
    useradd "${rootopt[@]}" --system --gid "$SERVICE_USER" --groups dialout --no-create-home \
      --home-dir /var/lib/$NAME --shell /usr/sbin/nologin --comment "POS token agent" "$SERVICE_USER"
  elif ! id -nG "$SERVICE_USER" 2>/dev/null | grep -qw dialout && [ -z "$ROOT" ]; then
    usermod -aG dialout "$SERVICE_USER"
  fi
}

# chown only where it means something: as root, with the names known in the target.
own() { # owner group path...
  local owner=$1 group=$2 uid gid
  shift 2
  [ "$IS_ROOT" = 1 ] || return 0
  uid=$(uid_of "$owner"); gid=$(gid_of "$group")
  if [ -z "$uid" ] || [ -z "$gid" ]; then
    echo "install.sh: warning: $owner:$group unknown here; left the owner of $* alone" >&2
    return 0
  fi
  chown "$uid:$gid" "$@"
}

# --- systemctl ---------------------------------------------------------------------------

systemd_running() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }
run_systemctl() {
  if [ "$SYSTEMCTL" = 1 ] && systemd_running; then
    systemctl "$@"
  else
    say "would run: systemctl $*"
  fi
}

# --- install -----------------------------------------------------------------------------

copy_production_modules() { # source stage
  local src=$1 stage=$2 p
  if [ ! -f "$src/package-lock.json" ]; then
    cp -pR "$src/node_modules" "$stage/node_modules"
    return 0
  fi
  mkdir -p "$stage/node_modules"
  # Top-level packages the lock file does not mark dev-only; nested ones come with them.
  "$NODE" -e '
    const lock = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    for (const [path, meta] of Object.entries(lock.packages ?? {})) {
      if (!/^node_modules\/(@[^/]+\/)?[^/]+$/.test(path) || meta.dev || meta.link) continue;
      console.log(path);
    }' "$src/package-lock.json" |
    while IFS= read -r p; do
      [ -e "$src/$p" ] || continue # an optional package this platform does not have
      mkdir -p "$stage/$(dirname "$p")"
      cp -pR "$src/$p" "$stage/$p"
    done
}

install_program() {
  local stage old item
  stage="$R$PREFIX.new.$$"
  old="$R$PREFIX.old.$$"
  rm -rf "${stage:?}"
  mkdir -p "$stage"
  for item in dist package.json package-lock.json README.md docs device-profiles systemd scripts node; do
    if [ -e "$SOURCE/$item" ]; then cp -pR "$SOURCE/$item" "$stage/$item"; fi
  done
  if [ -d "$SOURCE/node_modules" ]; then
    copy_production_modules "$SOURCE" "$stage"
  elif [ -d "$R$PREFIX/node_modules" ]; then
    cp -pR "$R$PREFIX/node_modules" "$stage/node_modules"
  else
    rm -rf "${stage:?}"
    die "the release at $SOURCE has no node_modules; build it with: npm ci --omit=dev (on the same CPU and libc)"
  fi
  [ "$IS_ROOT" = 0 ] || chown -R 0:0 "$stage"
  chmod -R u+rwX,go+rX,go-w "$stage"
  chmod 0755 "$stage"
  mkdir -p "$(dirname "$R$PREFIX")"
  if [ -e "$R$PREFIX" ]; then mv "$R$PREFIX" "$old"; fi
  mv "$stage" "$R$PREFIX"
  rm -rf "${old:?}"
}

install_file() { # mode source dest
  mkdir -p "$(dirname "$3")"
  cp "$2" "$3.tmp.$$"
  chmod "$1" "$3.tmp.$$"
  [ "$IS_ROOT" = 0 ] || chown 0:0 "$3.tmp.$$"
  mv -f "$3.tmp.$$" "$3"
}

# The units name /usr/bin/node and /opt/pos-token-agent; point them at what this box has.
render_unit() { # source dest
  local tmp="$2.render.$$"
  mkdir -p "$(dirname "$2")"
  sed -e "s#/usr/bin/node #$NODE #g" -e "s#/opt/pos-token-agent#$PREFIX#g" "$1" >"$tmp"
  install_file 0644 "$tmp" "$2"
  rm -f "$tmp"
}

write_wrappers() {
  local tmp="$R$BIN_DIR/.$NAME.$$" flags
  mkdir -p "$R$BIN_DIR" "$R$SBIN_DIR"
  # The node flags of the unit's ExecStart (V8's memory limits), so that the command runs as the service does.
  flags=$(sed -n 's#^ExecStart=/usr/bin/node \(\(--[^ ]* \)*\)/opt/pos-token-agent/dist/cli/main\.js run$#\1#p' "$SOURCE/systemd/$NAME.service")
  cat >"$tmp" <<EOF
#!/bin/sh
# pos-token-agent command, written by install.sh: the release in $PREFIX on $NODE, with the unit's flags.
exec $NODE $flags$PREFIX/dist/cli/main.js "\$@"
EOF
  install_file 0755 "$tmp" "$R$BIN_DIR/$NAME"
  rm -f "$tmp"
  ln -sfn "$PREFIX/scripts/provision.sh" "$R$SBIN_DIR/$NAME-provision"
}

write_config_skeleton() {
  local dir="$R/etc/$NAME" cfg="$R/etc/$NAME/config.json" tmp
  mkdir -p "$dir" "$dir/device-profiles"
  chmod 0750 "$dir"
  chmod 0755 "$dir/device-profiles"
  own root "$SERVICE_USER" "$dir"
  own root root "$dir/device-profiles"
  if [ -e "$cfg" ]; then
    # Kept as it is, but readable by the agent and by no one else.
    chmod 0640 "$cfg"
    own root "$SERVICE_USER" "$cfg"
    say "kept: $cfg"
    return 0
  fi
  tmp="$cfg.tmp.$$"
  # Paths are written out (under --root: inside the tree), accounts are added by provisioning.
  cat >"$tmp" <<EOF
{
  "socket": "$ROOT/run/$NAME/agent.sock",
  "stateDir": "$ROOT/var/lib/$NAME",
  "logLevel": "info",
  "accounts": {}
}
EOF
  chmod 0640 "$tmp"
  own root "$SERVICE_USER" "$tmp"
  mv "$tmp" "$cfg"
  say "wrote: $cfg (no accounts yet: run $NAME-provision)"
}

make_directories() {
  mkdir -p "$R/var/lib/$NAME"
  chmod 0700 "$R/var/lib/$NAME"
  own "$SERVICE_USER" "$SERVICE_USER" "$R/var/lib/$NAME"
  [ "$IS_ROOT" = 0 ] || [ -z "$(uid_of "$SERVICE_USER")" ] || chown -R "$(uid_of "$SERVICE_USER"):$(gid_of "$SERVICE_USER")" "$R/var/lib/$NAME"
  if [ -z "$ROOT" ]; then
    if command -v systemd-tmpfiles >/dev/null 2>&1; then
      systemd-tmpfiles --create "/etc/tmpfiles.d/$NAME.conf" || echo "install.sh: warning: systemd-tmpfiles reported problems" >&2
    else
      mkdir -p "/run/$NAME"
      chmod 0750 "/run/$NAME"
      own "$SERVICE_USER" "$CLIENT_GROUP" "/run/$NAME"
    fi
  fi
}

add_client_users() {
  local u
  for u in ${CLIENT_USERS[@]+"${CLIENT_USERS[@]}"}; do
    if [ -n "$ROOT" ]; then
      say "would run: usermod -aG $CLIENT_GROUP $u"
    else
      usermod -aG "$CLIENT_GROUP" "$u"
      say "added $u to $CLIENT_GROUP (takes effect at that user's next login or service restart)"
    fi
  done
}

do_install() {
  [ -n "$SOURCE" ] || SOURCE=$(cd "$(dirname "$0")/.." && pwd)
  SOURCE=$(cd "$SOURCE" && pwd)
  [ -f "$SOURCE/dist/cli/main.js" ] || die "no built release at $SOURCE (dist/cli/main.js missing; run npm run build)"
  [ -f "$SOURCE/systemd/$NAME.service" ] || die "$SOURCE/systemd/$NAME.service missing"
  # The node that runs it: --node, else the release's own runtime (installed to PREFIX/node), else PATH's.
  local check_node
  if [ -z "$NODE" ] && [ -x "$SOURCE/node/bin/node" ]; then
    check_node=$SOURCE/node/bin/node
    "$check_node" -e '' 2>/dev/null ||
      die "the runtime in this release does not run on this machine ($(uname -m)); take the release for this CPU (amd64 for x86_64, arm64 for aarch64)"
    NODE=$PREFIX/node/bin/node
  else
    [ -n "$NODE" ] || NODE=$(command -v node || true)
    [ -n "$NODE" ] || die "node not found; install Node.js >= 20, pass --node PATH, or use the release tarball that carries its own"
    check_node=$NODE
  fi
  case "$NODE" in
    /*) ;;
    *) die "--node must be an absolute path" ;;
  esac
  [ -x "$check_node" ] || die "$check_node is not executable"
  "$check_node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    die "$check_node is older than Node.js 20"
  # A runtime of our own runs at least the release's native modules: a box of another CPU finds out here.
  if [ -d "$SOURCE/node_modules/better-sqlite3" ]; then
    (cd "$SOURCE" && "$check_node" -e 'require("better-sqlite3")' 2>/dev/null) ||
      die "the release's native modules do not load on this machine ($(uname -m), $("$check_node" --version)); build or take the release for it"
  fi

  install_file 0644 "$SOURCE/systemd/$NAME.sysusers" "$R/etc/sysusers.d/$NAME.conf"
  install_file 0644 "$SOURCE/systemd/$NAME.tmpfiles" "$R/etc/tmpfiles.d/$NAME.conf"
  create_users
  install_program
  render_unit "$SOURCE/systemd/$NAME.service" "$R$UNIT_DIR/$NAME.service"
  render_unit "$SOURCE/systemd/$NAME.socket" "$R$UNIT_DIR/$NAME.socket"
  write_wrappers
  make_directories
  write_config_skeleton
  add_client_users

  run_systemctl daemon-reload
  run_systemctl enable "$NAME.socket"
  local provisioned=0
  if has_accounts && [ -f "$R/var/lib/$NAME/state.db" ]; then provisioned=1; fi
  if [ "$provisioned" = 1 ] && ! service_active; then
    # Provisioned before (a reinstall over kept state): the agent serves again, as it did.
    run_systemctl enable --now "$NAME.socket" "$NAME.service"
  else
    # An upgrade: a running agent picks up the new program.
    run_systemctl try-restart "$NAME.service"
  fi
  say "installed $NAME $("$check_node" -p 'require(process.argv[1]).version' "$R$PREFIX/package.json") in ${ROOT:-}$PREFIX"
  [ "$provisioned" = 1 ] || say "next: $NAME-provision (asks the account and the credentials, then starts the agent)"
}

# Whether the config names an account yet (read with the node that runs the agent).
has_accounts() {
  local cfg="$R/etc/$NAME/config.json"
  [ -f "$cfg" ] || return 1
  "$check_node" -e '
    try { process.exit(Object.keys(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).accounts ?? {}).length > 0 ? 0 : 1); }
    catch { process.exit(1); }' "$cfg"
}

service_active() {
  [ "$SYSTEMCTL" = 1 ] && systemd_running && systemctl is-active --quiet "$NAME.service"
}

# --- uninstall ---------------------------------------------------------------------------

do_uninstall() {
  run_systemctl disable --now "$NAME.socket" "$NAME.service" ||
    echo "install.sh: warning: systemctl could not disable the units (already gone?)" >&2
  rm -f "$R$UNIT_DIR/$NAME.service" "$R$UNIT_DIR/$NAME.socket"
  rm -rf "$R$UNIT_DIR/$NAME.service.d" "$R$UNIT_DIR/$NAME.socket.d"
  rm -f "$R/etc/sysusers.d/$NAME.conf" "$R/etc/tmpfiles.d/$NAME.conf"
  rm -f "$R$BIN_DIR/$NAME" "$R$SBIN_DIR/$NAME-provision"
  rm -rf "${R}${PREFIX:?}" "$R$PREFIX".new.* "$R$PREFIX".old.*
  rm -rf "$R/run/$NAME" "$R/var/cache/$NAME"
  run_systemctl daemon-reload
  if [ "$PURGE" = 1 ]; then
    rm -rf "$R/etc/$NAME" "$R/var/lib/$NAME"
    say "removed $NAME with its config and state; the users $SERVICE_USER and group $CLIENT_GROUP are kept"
  else
    say "removed $NAME; kept $R/etc/$NAME and $R/var/lib/$NAME (credentials and state): --purge removes them"
  fi
}

if [ "$MODE" = install ]; then do_install; else do_uninstall; fi
