#!/usr/bin/env bash
# pos-token-agent-provision: the technician's guided set-up. The work is `pos-token-agent setup`
# (src/cli/commands/setup.ts, on the authority registry); this wrapper only finds the runtime and the
# release it belongs to. Every option and POS_* variable is described by --help.
set -eu
SELF_DIR=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
# The release's own runtime first (a packaged box has no other node), then PATH's.
NODE=${POS_NODE:-}
if [ -z "$NODE" ] && [ -x "$SELF_DIR/../node/bin/node" ]; then NODE=$SELF_DIR/../node/bin/node; fi
NODE=${NODE:-$(command -v node || true)}
if [ -z "$NODE" ]; then
  echo "provision: node not found (no runtime in $SELF_DIR/../node and none on PATH)" >&2
  exit 1
fi
MAIN=$SELF_DIR/../dist/cli/main.js
if [ ! -f "$MAIN" ]; then
  echo "provision: $MAIN not found (build with npm run build, or use an installed release)" >&2
  exit 1
fi
exec "$NODE" "$MAIN" setup "$@"
