#!/usr/bin/env bash
# Sets up pos-token-agent on a box for a technician: account, device profile, credentials,
# a check, the service, and a summary to read out on the phone. See --help.
set -eu
set -o pipefail
umask 077

NAME=pos-token-agent

usage() {
  cat <<'EOF'
Usage: pos-token-agent-provision [options]          (scripts/provision.sh; run as root)

Sets up the token agent on this box, asking for what the config does not have yet:
  1. the account (default "default"), the authority and the identity service URL;
  2. the device profile (detected with: pos-token-agent identity --detect), and for the
     "manual" profile the posserial / pososversion / posmodelframework values;
  3. the credentials, with hidden input. They never go on a command line: they are passed
     on standard input to "pos-token-agent provision --stdin", run as the agent's user,
     which checks them with one real login and stores them encrypted;
  4. runs "pos-token-agent doctor", enables and starts pos-token-agent.socket and .service,
     and prints a short summary (account, authority, profile, serial, token expiry, agent).
Running it again rotates the credentials (the new ones replace the old; the agent keeps
serving its current token meanwhile) or changes the account's settings; nothing else is
lost. If the check login fails, nothing is stored and the config is left as it was.

Options:
  --account NAME        account name (env POS_ACCOUNT; default "default", or the only
                        account of the config)
  --authority NAME      eta-ereceipt, eta-einvoicing, myinvois, impact-gr, sepay, oauth2
                        (env POS_AUTHORITY)
  --identity-url URL    the authority's identity service (for oauth2: the token endpoint)
                        (env POS_IDENTITY_URL)
  --profile NAME        device profile, e.g. generic-x86, raspberry-pi, manual (env POS_PROFILE)
  --serial VALUE        posserial, kept in the config (env POS_SERIAL); with --os-version
                        (POS_OS_VERSION) and --model-framework (POS_MODEL_FRAMEWORK) these
                        are the "manual" profile's values, and override any profile's
  --non-interactive     ask nothing: values come from the options, --from FILE and the
                        environment (flags win over the file, the file over the environment).
                        Credentials: POS_CLIENT_ID, POS_CLIENT_SECRET, POS_PRESHARED_KEY
                        (eta-ereceipt), POS_VAT and POS_API_KEY (impact-gr)
  --from FILE           read the values above from FILE: a JSON object (keys account,
                        authority, identityUrl, profile, serial, osVersion, modelFramework,
                        clientId, clientSecret, presharedKey, vat, apiKey, or the POS_* names)
                        or an env file of POS_*=VALUE lines. FILE must be readable by its
                        owner only (0600 or 0400), else it is refused
  --config FILE         the agent's config (default /etc/pos-token-agent/config.json)
  --root DIR            work on a tree installed with install.sh --root DIR: config in
                        DIR/etc/pos-token-agent; commands run as the invoking user; no systemctl
  --user USER           the agent's user that provisioning runs as (default pos-token-agent)
  --no-verify           store the credentials without the check login (offline installs)
  --no-systemctl        do not enable or start the units (print what would run)
  --skip-doctor         do not run pos-token-agent doctor
  -h, --help            this text

Environment: POS_TOKEN_AGENT_BIN  the pos-token-agent command to use (a program, or a
             .js file run with node); default pos-token-agent on PATH, then the release
             this script belongs to.
             POS_NODE  the node that runs this script's helpers (default: the release's own
             runtime, then node on PATH).

When the service takes its sealing key from a systemd credential (a drop-in with
LoadCredentialEncrypted=pos-token-agent.key:PATH), the steps that open the state (the check
login and storing, doctor) run in the service's context through systemd-run, with the same
credential, user and state directory, so that what they store is what the agent can read.

Exit status: 0 done, 1 failed (the message says what to do), 2 usage error.
EOF
}

die() { echo "provision: $*" >&2; exit 1; }
usage_error() { echo "provision: $*" >&2; echo "See: pos-token-agent-provision --help" >&2; exit 2; }
say() { echo "$*" >&2; }

# --- options -------------------------------------------------------------------------------

ROOT=""
CONFIG=""
FROM=""
SERVICE_USER=pos-token-agent
INTERACTIVE=1
SYSTEMCTL=1
DOCTOR=1
VERIFY=1
declare -A FLAG=()

need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || usage_error "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --account) need_arg "$@"; FLAG[POS_ACCOUNT]=$2; shift 2 ;;
    --authority) need_arg "$@"; FLAG[POS_AUTHORITY]=$2; shift 2 ;;
    --identity-url) need_arg "$@"; FLAG[POS_IDENTITY_URL]=$2; shift 2 ;;
    --profile) need_arg "$@"; FLAG[POS_PROFILE]=$2; shift 2 ;;
    --serial) need_arg "$@"; FLAG[POS_SERIAL]=$2; shift 2 ;;
    --os-version) need_arg "$@"; FLAG[POS_OS_VERSION]=$2; shift 2 ;;
    --model-framework) need_arg "$@"; FLAG[POS_MODEL_FRAMEWORK]=$2; shift 2 ;;
    --non-interactive) INTERACTIVE=0; shift ;;
    --from) need_arg "$@"; FROM=$2; shift 2 ;;
    --config) need_arg "$@"; CONFIG=$2; shift 2 ;;
    --root) need_arg "$@"; ROOT=$2; shift 2 ;;
    --user) need_arg "$@"; SERVICE_USER=$2; shift 2 ;;
    --no-verify) VERIFY=0; shift ;;
    --no-systemctl) SYSTEMCTL=0; shift ;;
    --skip-doctor) DOCTOR=0; shift ;;
    -h|--help) usage; exit 0 ;;
    --client-secret*|--preshared-key*|--api-key*|--secret*|--password*)
      usage_error "secrets are never taken on the command line; use the prompt, --from FILE or the environment" ;;
    *) usage_error "unknown option $1" ;;
  esac
done

if [ -n "$ROOT" ]; then
  case "$ROOT" in /*) ;; *) ROOT=$(pwd)/$ROOT ;; esac
  ROOT=${ROOT%/}
  [ -d "$ROOT" ] || die "--root $ROOT is not a directory"
  SYSTEMCTL=0
fi
CONFIG=${CONFIG:-$ROOT/etc/$NAME/config.json}

# --- the tools -----------------------------------------------------------------------------

SELF_DIR=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
# The release's own runtime first (a packaged box has no other node), then PATH's.
NODE=${POS_NODE:-}
if [ -z "$NODE" ] && [ -x "$SELF_DIR/../node/bin/node" ]; then NODE=$SELF_DIR/../node/bin/node; fi
NODE=${NODE:-$(command -v node || true)}
[ -n "$NODE" ] || die "node not found (no runtime in $SELF_DIR/../node and none on PATH)"
BIN=${POS_TOKEN_AGENT_BIN:-}
if [ -z "$BIN" ]; then
  if [ -z "$ROOT" ] && command -v "$NAME" >/dev/null 2>&1; then BIN=$(command -v "$NAME")
  else BIN=$SELF_DIR/../dist/cli/main.js
  fi
fi
case "$BIN" in
  *.js) [ -f "$BIN" ] || die "$BIN not found (set POS_TOKEN_AGENT_BIN)"; CLI=("$NODE" "$BIN") ;;
  *) command -v "$BIN" >/dev/null 2>&1 || die "$BIN not found (set POS_TOKEN_AGENT_BIN)"; CLI=("$BIN") ;;
esac

# Runs the agent's CLI as the agent's user, so that what it writes is the agent's.
AS_AGENT=()
if [ "$(id -u)" = 0 ] && [ -z "$ROOT" ]; then
  id -u "$SERVICE_USER" >/dev/null 2>&1 || die "there is no user $SERVICE_USER; run install.sh first"
  if [ "$SERVICE_USER" != root ]; then
    command -v runuser >/dev/null 2>&1 || die "runuser not found (util-linux)"
    AS_AGENT=(runuser -u "$SERVICE_USER" --)
  fi
fi

systemd_running() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# The key as a systemd credential: the service's LoadCredential(Encrypted)= entries for it. Commands
# that open the state then run in a transient unit with the same credential, user and state directory;
# outside it they would find no key, and a database sealed with the credential is refused there.
CRED_PROPS=()
if [ -z "$ROOT" ] && [ "$SYSTEMCTL" = 1 ] && systemd_running && [ "$(id -u)" = 0 ]; then
  # The unit as systemd has it, drop-ins included (systemctl cat), not a guess at their paths.
  while IFS= read -r line; do
    case "$line" in
      LoadCredential=$NAME.key|LoadCredential=$NAME.key:*|LoadCredentialEncrypted=$NAME.key|LoadCredentialEncrypted=$NAME.key:*) CRED_PROPS+=(-p "$line") ;;
    esac
  done < <(systemctl cat "$NAME.service" 2>/dev/null || true)
fi
# Runs the agent's CLI where the agent's state is its own: in the credential's context when there is
# one, else as the agent's user.
agent_cli() {
  if [ ${#CRED_PROPS[@]} -gt 0 ]; then
    systemd-run --quiet --pipe --wait --collect --service-type=exec \
      -p User="$SERVICE_USER" -p Group="$SERVICE_USER" -p SupplementaryGroups=dialout -p UMask=0077 \
      -p StateDirectory="$NAME" -p StateDirectoryMode=0700 "${CRED_PROPS[@]}" \
      -- "${CLI[@]}" "$@"
  else
    ${AS_AGENT[@]+"${AS_AGENT[@]}"} "${CLI[@]}" "$@"
  fi
}

# JSON work in node: reading and editing the config, reading the CLI's JSON answers.
HELPER='
const fs = require("fs");
const [cmd, ...args] = process.argv.slice(1);
const out = (k, v) => { if (v !== undefined && v !== null) process.stdout.write(`${k}=${String(v).replace(/[\r\n]/g, " ")}\n`); };
const readStdin = () => { try { return JSON.parse(fs.readFileSync(0, "utf8")); } catch { return {}; } };
const MAP = { account: "POS_ACCOUNT", authority: "POS_AUTHORITY", identityUrl: "POS_IDENTITY_URL", tokenUrl: "POS_IDENTITY_URL",
  profile: "POS_PROFILE", deviceProfile: "POS_PROFILE", serial: "POS_SERIAL", posserial: "POS_SERIAL",
  osVersion: "POS_OS_VERSION", pososversion: "POS_OS_VERSION", modelFramework: "POS_MODEL_FRAMEWORK",
  posmodelframework: "POS_MODEL_FRAMEWORK", clientId: "POS_CLIENT_ID", clientSecret: "POS_CLIENT_SECRET",
  presharedKey: "POS_PRESHARED_KEY", vat: "POS_VAT", apiKey: "POS_API_KEY" };
if (cmd === "from-json") {
  let json;
  try { json = JSON.parse(fs.readFileSync(args[0], "utf8")); } catch (e) { console.error(`${args[0]} is not valid JSON`); process.exit(1); }
  if (typeof json !== "object" || json === null || Array.isArray(json)) { console.error(`${args[0]} must hold one JSON object`); process.exit(1); }
  for (const [k, v] of Object.entries(json)) {
    const key = MAP[k] ?? (Object.values(MAP).includes(k) ? k : undefined);
    if (!key) { console.error(`${args[0]}: unknown key ${JSON.stringify(k)}`); process.exit(1); }
    if (typeof v !== "string" || /[\r\n]/.test(v)) { console.error(`${args[0]}: ${k} must be a one-line string`); process.exit(1); }
    process.stdout.write(`${key}=${v}\n`);
  }
} else if (cmd === "read-config") {
  const [file, account] = args;
  let cfg;
  try { cfg = JSON.parse(fs.readFileSync(file, "utf8")); } catch (e) { out("config", e.code === "ENOENT" ? "missing" : "unreadable"); process.exit(0); }
  out("config", "ok");
  const names = Object.keys(cfg.accounts ?? {});
  out("accounts", names.join(","));
  out("socket", cfg.socket);
  out("stateDir", cfg.stateDir);
  const a = account ? cfg.accounts?.[account] : names.length === 1 ? cfg.accounts[names[0]] : undefined;
  if (!a) process.exit(0);
  out("account", account || names[0]);
  out("authority", a.authority);
  out("url", a.identityUrl ?? a.tokenUrl);
  out("profile", a.deviceProfile);
  out("serial", a.identity?.posserial);
  out("osversion", a.identity?.pososversion);
  out("model", a.identity?.posmodelframework);
} else if (cmd === "write-config") {
  const [file, account, authority, url, profile, serial, osversion, model, socket, stateDir] = args;
  let cfg = { socket, stateDir, logLevel: "info", accounts: {} };
  let st;
  try { cfg = JSON.parse(fs.readFileSync(file, "utf8")); st = fs.statSync(file); } catch (e) { if (e.code !== "ENOENT") throw e; }
  const before = st ? JSON.stringify(cfg) : "";
  cfg.accounts ??= {};
  const a = cfg.accounts[account] ?? {};
  if (authority) a.authority = authority;
  if (url) {
    const key = a.authority === "oauth2" ? "tokenUrl" : "identityUrl";
    if (a[key] !== url) { delete a.identityUrl; delete a.tokenUrl; a[key] = url; }
  }
  if (profile) a.deviceProfile = profile;
  const identity = { ...a.identity };
  if (serial) identity.posserial = serial;
  if (osversion) identity.pososversion = osversion;
  if (model) identity.posmodelframework = model;
  if (Object.keys(identity).length) a.identity = identity;
  cfg.accounts[account] = a;
  if (JSON.stringify(cfg) === before) process.exit(0);
  const tmp = `${file}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(cfg, null, 2) + "\n");
  fs.chmodSync(tmp, st ? st.mode & 0o777 : 0o640);
  if (st) { try { fs.chownSync(tmp, st.uid, st.gid); } catch {} }
  fs.renameSync(tmp, file);
  process.stdout.write("changed\n");
} else if (cmd === "detect") {
  for (const m of readStdin().matches ?? []) process.stdout.write(`${m.profile}\t${m.description ?? ""}\n`);
} else if (cmd === "identity") {
  const j = readStdin();
  out("profile", j.profile);
  for (const f of ["posserial", "pososversion", "posmodelframework"]) out(f, j.values?.[f]?.value);
  for (const [f, e] of Object.entries(j.errors ?? {})) out("error", `${f}: ${e}`);
  out("ok", j.ok);
} else if (cmd === "status") {
  const a = readStdin().accounts?.[args[0]];
  if (!a) process.exit(0);
  out("state", a.state);
  out("expires_at", a.expires_at);
  out("serial", a.identity?.posserial);
  if (a.last_error) out("last_error", `${a.last_error.reason}: ${a.last_error.message}`);
} else if (cmd === "until") {
  const ms = Date.parse(args[0]) - Date.now();
  if (Number.isNaN(ms)) process.exit(1);
  const d = new Date(args[0]);
  const when = d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  const mins = Math.round(ms / 60000);
  process.stdout.write(ms > 0 ? `${when} (in ${mins >= 120 ? Math.floor(mins / 60) + " hours" : mins + " minutes"})\n` : `${when} (expired)\n`);
} else if (cmd === "after-seconds") {
  process.stdout.write(new Date(Date.now() + Number(args[0]) * 1000).toISOString() + "\n");
}
'
helper() { "$NODE" -e "$HELPER" "$@"; }

# --- values: flags over --from FILE over the environment ------------------------------------

KEYS=(POS_ACCOUNT POS_AUTHORITY POS_IDENTITY_URL POS_PROFILE POS_SERIAL POS_OS_VERSION POS_MODEL_FRAMEWORK
  POS_CLIENT_ID POS_CLIENT_SECRET POS_PRESHARED_KEY POS_VAT POS_API_KEY)
declare -A V=()
for k in "${KEYS[@]}"; do
  if [ -n "${!k:-}" ]; then V[$k]=${!k}; fi
done

load_from_file() {
  local file=$1 mode owner line key value first
  [ -f "$file" ] || die "--from $file: no such file"
  mode=$(stat -c %a "$file")
  owner=$(stat -c %u "$file")
  if [ $((8#$mode & 8#077)) -ne 0 ]; then
    die "--from $file is readable by others (mode $mode); it holds secrets: chmod 600 $file"
  fi
  if [ "$owner" != "$(id -u)" ] && [ "$owner" != 0 ]; then die "--from $file belongs to another user"; fi
  first=$(tr -d ' \t\r\n' <"$file" | head -c 1)
  if [ "$first" = "{" ]; then
    while IFS= read -r line; do
      V[${line%%=*}]=${line#*=}
    done < <(helper from-json "$file" || echo "__failed__=1")
    [ -z "${V[__failed__]:-}" ] || die "cannot read --from $file"
    return 0
  fi
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%$'\r'}
    case "$line" in ''|'#'*) continue ;; esac
    line=${line#export }
    key=${line%%=*}
    [ "$key" != "$line" ] || die "--from $file: not KEY=VALUE: a line starting ${line:0:12}"
    value=${line#*=}
    case "$value" in
      \"*\") value=${value:1:${#value}-2} ;;
      \'*\') value=${value:1:${#value}-2} ;;
    esac
    case " ${KEYS[*]} " in
      *" $key "*) V[$key]=$value ;;
      *) die "--from $file: unknown key $key" ;;
    esac
  done <"$file"
}
[ -z "$FROM" ] || load_from_file "$FROM"
for k in "${!FLAG[@]}"; do V[$k]=${FLAG[$k]}; done

if [ "$INTERACTIVE" = 1 ] && ! [ -t 0 ]; then
  die "standard input is not a terminal: run it in a terminal, or use --non-interactive with --from FILE or POS_* variables"
fi

ask() { # var question default
  local answer
  if [ -n "${3:-}" ]; then read -r -p "$2 [$3]: " answer; else read -r -p "$2: " answer; fi
  answer=${answer:-${3:-}}
  printf -v "$1" '%s' "$answer"
}
ask_secret() { # var question
  local answer
  read -r -s -p "$2: " answer
  echo >&2
  printf -v "$1" '%s' "$answer"
}
missing() { die "$1 is missing: pass $2 (non-interactive mode asks nothing)"; }

# --- 1. account, authority, URL --------------------------------------------------------------

declare -A C=()
read_config() {
  C=()
  local line
  while IFS= read -r line; do C[${line%%=*}]=${line#*=}; done < <(helper read-config "$CONFIG" "${1:-}")
}
read_config "${V[POS_ACCOUNT]:-}"
[ "${C[config]}" != unreadable ] || die "cannot read $CONFIG (not JSON, or no permission: run as root)"

ACCOUNT=${V[POS_ACCOUNT]:-${C[account]:-}}
if [ -z "$ACCOUNT" ]; then
  if [ "$INTERACTIVE" = 1 ]; then ask ACCOUNT "Account name (tills ask for \"default\")" default; else ACCOUNT=default; fi
fi
[[ "$ACCOUNT" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] || die "account name $ACCOUNT: use letters, digits, '.', '_', '-' (at most 64)"
read_config "$ACCOUNT"

AUTHORITY=${V[POS_AUTHORITY]:-${C[authority]:-}}
if [ -z "$AUTHORITY" ]; then
  [ "$INTERACTIVE" = 1 ] || missing "the authority" "--authority or POS_AUTHORITY"
  say "Authorities: eta-ereceipt (Egypt eReceipt), eta-einvoicing (Egypt eInvoicing), myinvois (Malaysia),"
  say "             impact-gr (Greece), sepay (Vietnam), oauth2 (any OAuth 2.0 client-credentials service)"
  ask AUTHORITY "Authority" eta-ereceipt
fi
case "$AUTHORITY" in
  eta-ereceipt) CRED_FIELDS=(clientId clientSecret presharedKey) ;;
  eta-einvoicing|myinvois|sepay|oauth2) CRED_FIELDS=(clientId clientSecret) ;;
  impact-gr) CRED_FIELDS=(vat apiKey) ;;
  *) die "unknown authority $AUTHORITY" ;;
esac

URL=${V[POS_IDENTITY_URL]:-${C[url]:-}}
if [ -z "$URL" ] || { [ -n "${C[authority]:-}" ] && [ "${C[authority]}" != "$AUTHORITY" ] && [ -z "${V[POS_IDENTITY_URL]:-}" ]; }; then
  [ "$INTERACTIVE" = 1 ] || missing "the identity service URL" "--identity-url or POS_IDENTITY_URL"
  case "$AUTHORITY" in
    eta-*) say "ETA identity service: pre-production https://id.preprod.eta.gov.eg, production https://id.eta.gov.eg" ;;
    oauth2) say "For oauth2 give the token endpoint itself, e.g. https://login.example.com/oauth2/token" ;;
  esac
  ask URL "Identity service URL" "${C[url]:-}"
fi
[ -n "$URL" ] || die "no identity service URL given"

# --- 2. device profile and identity values ----------------------------------------------------

PROFILE=${V[POS_PROFILE]:-}
SERIAL=${V[POS_SERIAL]:-}
OSVERSION=${V[POS_OS_VERSION]:-}
MODEL=${V[POS_MODEL_FRAMEWORK]:-}

# The config is changed only if the credentials are then stored; on failure it is restored.
BACKUP=""
CONFIG_CHANGED=0 # a backup exists and is restored on failure
CONFIG_DIRTY=0   # the config's content changed: a running agent must reload
restore_config() {
  if [ "$CONFIG_CHANGED" = 1 ]; then
    if [ -n "$BACKUP" ]; then cp -p "$BACKUP" "$CONFIG"; else rm -f "$CONFIG"; fi
    say "provision: the config was left as it was"
  fi
  [ -z "$BACKUP" ] || rm -f "$BACKUP"
}
write_config() { # authority url profile serial osversion model
  if [ "$CONFIG_CHANGED" = 0 ]; then
    local created=0
    if [ -f "$CONFIG" ]; then
      BACKUP=$CONFIG.provision-backup
      cp -p "$CONFIG" "$BACKUP"
    else
      created=1
      [ -d "$(dirname "$CONFIG")" ] || mkdir -p -m 0750 "$(dirname "$CONFIG")"
    fi
    CONFIG_CHANGED=1
    trap 'restore_config' EXIT
  fi
  local result
  result=$(helper write-config "$CONFIG" "$ACCOUNT" "$@" "$ROOT/run/$NAME/agent.sock" "$ROOT/var/lib/$NAME") ||
    die "cannot write $CONFIG"
  [ "$result" != changed ] || CONFIG_DIRTY=1
  # A config made here (no install.sh) must still be readable by the agent's group.
  if [ "${created:-0}" = 1 ] && [ ${#AS_AGENT[@]} -gt 0 ]; then
    chgrp "$SERVICE_USER" "$CONFIG" "$(dirname "$CONFIG")" 2>/dev/null || true
  fi
}

if [ "${C[authority]:-}" != "$AUTHORITY" ] || [ "${C[url]:-}" != "$URL" ] || [ -n "$SERIAL$OSVERSION$MODEL" ]; then
  write_config "$AUTHORITY" "$URL" "" "$SERIAL" "$OSVERSION" "$MODEL"
fi

if [ -z "$PROFILE" ] && [ -z "${C[profile]:-}" ] && [ -z "${C[serial]:-}" ] && [ -z "$SERIAL" ]; then
  DETECTED=()
  while IFS=$'\t' read -r p d; do
    [ -n "$p" ] && DETECTED+=("$p") && say "  detected device profile: $p  ($d)"
  done < <(agent_cli identity --detect --json --config "$CONFIG" 2>/dev/null | helper detect || true)
  if [ "$INTERACTIVE" = 1 ]; then
    [ ${#DETECTED[@]} -gt 0 ] || say "No device profile matches this hardware; \"manual\" takes the values from you."
    ask PROFILE "Device profile" "${DETECTED[0]:-manual}"
  else
    [ ${#DETECTED[@]} -gt 0 ] || missing "the device profile (none detected)" "--profile or POS_PROFILE (manual with POS_SERIAL...)"
    PROFILE=${DETECTED[0]}
  fi
fi
if [ "${PROFILE:-${C[profile]:-}}" = manual ] && [ -z "${SERIAL:-${C[serial]:-}}" ] && [ "$AUTHORITY" = eta-ereceipt ]; then
  [ "$INTERACTIVE" = 1 ] || missing "posserial (manual profile)" "--serial or POS_SERIAL"
  ask SERIAL "POS serial number (posserial)" ""
  ask OSVERSION "POS OS version (pososversion)" "${C[osversion]:-}"
  ask MODEL "POS model/framework (posmodelframework)" "${C[model]:-1}"
fi
if [ -n "$PROFILE$SERIAL$OSVERSION$MODEL" ]; then
  write_config "" "" "$PROFILE" "$SERIAL" "$OSVERSION" "$MODEL"
fi
read_config "$ACCOUNT"

declare -A ID=()
while IFS= read -r line; do ID[${line%%=*}]=${line#*=}; done < <(
  agent_cli identity --account "$ACCOUNT" --json --config "$CONFIG" 2>/dev/null | helper identity || true)
if [ -n "${ID[posserial]:-}" ]; then
  say "Identity of this box: posserial ${ID[posserial]}, pososversion ${ID[pososversion]:--}, posmodelframework ${ID[posmodelframework]:--}"
fi
if [ -n "${ID[error]:-}" ]; then say "Identity problem: ${ID[error]}"; fi

# --- 3. credentials -----------------------------------------------------------------------------

declare -A ENV_OF=([clientId]=POS_CLIENT_ID [clientSecret]=POS_CLIENT_SECRET [presharedKey]=POS_PRESHARED_KEY
  [vat]=POS_VAT [apiKey]=POS_API_KEY)
declare -A LABEL=([clientId]="Client ID" [clientSecret]="Client secret" [presharedKey]="Preshared key (Enter to leave out)"
  [vat]="VAT number" [apiKey]="API key")
json_string() { # value -> JSON string on stdout (builtins only: the value never leaves this shell)
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}
CREDS="{"
sep=""
for f in "${CRED_FIELDS[@]}"; do
  value=${V[${ENV_OF[$f]}]:-}
  if [ -z "$value" ] && [ "$INTERACTIVE" = 1 ]; then
    case "$f" in
      clientId|vat) ask value "${LABEL[$f]}" "" ;;
      *) ask_secret value "${LABEL[$f]}" ;;
    esac
  fi
  if [ -z "$value" ]; then
    case "$f" in presharedKey) continue ;; esac
    missing "$f" "${ENV_OF[$f]} (or --from FILE)"
  fi
  [[ "$value" != *[[:cntrl:]]* ]] || die "$f contains control characters"
  CREDS+="$sep\"$f\":$(json_string "$value")"
  sep=","
done
CREDS+="}"

PROVISION_ARGS=(provision --account "$ACCOUNT" --stdin --config "$CONFIG")
[ "$VERIFY" = 1 ] || PROVISION_ARGS+=(--no-verify)
say "Checking the credentials with a login to $URL ..."
if ! PROVISION_OUT=$(printf '%s' "$CREDS" | agent_cli "${PROVISION_ARGS[@]}"); then
  CREDS=""
  die "the credentials were not stored (see the message above); fix and run this again"
fi
CREDS=""
say "$PROVISION_OUT"
# Under --root as root the CLI ran as root: hand the state to the tree's service user, as
# runuser would have on the box itself.
if [ -n "$ROOT" ] && [ "$(id -u)" = 0 ] && [ -n "${C[stateDir]:-}" ] && [ -f "$ROOT/etc/passwd" ]; then
  owner=$(awk -F: -v n="$SERVICE_USER" '$1 == n { print $3 ":" $4; exit }' "$ROOT/etc/passwd")
  [ -z "$owner" ] || chown -R "$owner" "${C[stateDir]}"
fi
# Stored: keep the config as written.
CONFIG_CHANGED=0
trap - EXIT
[ -z "$BACKUP" ] || rm -f "$BACKUP"

TOKEN_UNTIL=""
if [[ "$PROVISION_OUT" =~ valid\ for\ ([0-9]+)\ s ]]; then
  TOKEN_UNTIL=$(helper after-seconds "${BASH_REMATCH[1]}")
fi

# --- 4. doctor, service, summary ---------------------------------------------------------------

DOCTOR_RESULT=skipped
if [ "$DOCTOR" = 1 ]; then
  say "Running pos-token-agent doctor ..."
  set +e
  agent_cli doctor --config "$CONFIG" >&2
  rc=$?
  set -e
  case "$rc" in
    0) DOCTOR_RESULT=ok ;;
    2) DOCTOR_RESULT="not available in this version" ;;
    *) die "doctor found problems (above); the credentials are stored: fix them and run this again" ;;
  esac
fi

AGENT_NOTE=""
if [ "$SYSTEMCTL" = 1 ] && systemd_running; then
  WAS_ACTIVE=0
  systemctl is-active --quiet "$NAME.service" && WAS_ACTIVE=1
  systemctl reset-failed "$NAME.socket" "$NAME.service" 2>/dev/null || true
  systemctl enable --now "$NAME.socket" "$NAME.service"
  # A running agent reads the new account settings on reload; new credentials it finds itself.
  if [ "$WAS_ACTIVE" = 1 ] && [ "$CONFIG_DIRTY" = 1 ]; then systemctl reload "$NAME.service"; fi
else
  AGENT_NOTE="not started here"
  say "would run: systemctl enable --now $NAME.socket $NAME.service"
fi

declare -A ST=()
status_once() {
  local line
  ST=()
  # Nothing listens where no socket is: skip starting the CLI for nothing.
  if [ -n "${C[socket]:-}" ] && ! [ -S "${C[socket]}" ]; then return 0; fi
  while IFS= read -r line; do ST[${line%%=*}]=${line#*=}; done < <(
    "${CLI[@]}" status --json --config "$CONFIG" 2>/dev/null | helper status "$ACCOUNT" || true)
}
status_once
if [ -z "$AGENT_NOTE" ]; then
  for _ in $(seq 1 30); do
    case "${ST[state]:-}" in fresh|stale) break ;; esac
    sleep 1
    status_once
  done
fi
if [ -n "${ST[state]:-}" ]; then
  AGENT="running; account $ACCOUNT is ${ST[state]}${ST[last_error]:+ (${ST[last_error]})}"
  [ -z "${ST[expires_at]:-}" ] || TOKEN_UNTIL=${ST[expires_at]}
else
  AGENT="not answering${AGENT_NOTE:+ ($AGENT_NOTE)}"
fi
TOKEN="unknown"
if [ -n "$TOKEN_UNTIL" ]; then TOKEN="valid until $(helper until "$TOKEN_UNTIL")"; fi
if [ "$VERIFY" = 0 ] && [ -z "${ST[expires_at]:-}" ]; then TOKEN="none yet (stored without a check login)"; fi

cat <<EOF

==================== pos-token-agent ====================
  Box:         $(hostname)
  Account:     $ACCOUNT
  Authority:   $AUTHORITY  ($URL)
  Profile:     ${C[profile]:-none (config values)}
  Serial:      ${ST[serial]:-${ID[posserial]:-${C[serial]:-unknown}}}
  Token:       $TOKEN
  Agent:       $AGENT
  Doctor:      $DOCTOR_RESULT
=========================================================
EOF
