#!/usr/bin/env bash
# Keeps unused dependencies out of the workspace; offline, in well under a second.
#
# Fails when
#   - a `[workspace.dependencies]` entry of the root Cargo.toml is declared by no member, or
#   - a member declares a dependency (normal, dev or build) that its sources never name
#     (`name::`, `use name`, `extern crate name`, `-` read as `_`).
#
# Expects the manifests' own style: one dependency per line, `name.workspace = true` or
# `name = ...`; a `package = "..."` rename is refused, so nothing slips through unread.
#
# `scripts/check-deps.sh [WORKSPACE_DIR]` (default: the repository this script is in).
set -euo pipefail
root="${1:-$(dirname "$0")/..}"
cd "$root"

# Declared for a member that adds its use in a change of its own; each with its reason.
pending_workspace=()

# The dependency names of the `[section]` tables matched by $2 in manifest $1.
deps_of() {
  awk -v want="$2" '
    /^\[/ { in_section = ($0 ~ want) ; next }
    in_section && /^[A-Za-z0-9_-]+(\.workspace)? *=/ {
      name = $0
      sub(/[ .=].*/, "", name)
      print name
    }
  ' "$1"
}

fail=0
if grep -nE '^[^#]*package *= *"' Cargo.toml */Cargo.toml >/dev/null 2>&1; then
  echo "check-deps: a renamed dependency (package = ...) is not understood by this check:" >&2
  grep -nE '^[^#]*package *= *"' Cargo.toml */Cargo.toml >&2
  exit 1
fi

members=$(awk '/^members *=/ { gsub(/.*\[|\].*|"|,/, " "); print }' Cargo.toml)
workspace_deps=$(deps_of Cargo.toml '^\[workspace\.dependencies\]')

declared_by_members=""
for member in $members; do
  manifest="$member/Cargo.toml"
  member_deps=$(deps_of "$manifest" '^\[(dev-|build-)?dependencies\]')
  declared_by_members+=" $member_deps"
  sources=$(find "$member" -name '*.rs' -not -path '*/target/*')
  for dep in $member_deps; do
    ident=${dep//-/_}
    if ! grep -qE "(^|[^A-Za-z0-9_])${ident}::|use ${ident}( |;|::)|extern crate ${ident}" $sources; then
      echo "check-deps: $manifest declares \`$dep\`, which no source of $member names" >&2
      fail=1
    fi
  done
done

for dep in $workspace_deps; do
  if grep -qxF "$dep" <(tr ' ' '\n' <<<"$declared_by_members"); then
    continue
  fi
  pending=""
  for entry in "${pending_workspace[@]}"; do
    [ "${entry%%:*}" = "$dep" ] && pending=1
  done
  if [ -z "$pending" ]; then
    echo "check-deps: Cargo.toml's [workspace.dependencies] has \`$dep\`, which no member declares" >&2
    fail=1
  fi
done

if [ "$fail" = 0 ]; then
  echo "check-deps: every dependency is used"
fi
exit "$fail"
