#!/usr/bin/env bash
# A real deploy on this machine, no SSH server and no setup needed: a sample app in a git
# repository made on the fly, deployed with `host: "localhost"` into a scratch directory.
# Shows setup, a first deploy, a second commit deployed, `revert 1`, and `list`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
echo "== building pmfleet and pmfleet-agent (the first build takes a few minutes; later ones seconds)"
cargo build --manifest-path "$top/Cargo.toml" -p pmfleet -p pmfleet-agent
pmfleet="$top/target/debug/pmfleet"
agent="$top/target/debug/pmfleet-agent"

work=${PMFLEET_QUICKSTART_DIR:-$(mktemp -d /tmp/pmfleet-quickstart.XXXXXX)}
mkdir -p "$work"
echo "== working in $work"

# The app's repository: the sample app from examples/quickstart/app, version 1.
repo="$work/app.git"
rm -rf "$repo" && mkdir -p "$repo"
cp -R "$here/app/." "$repo/"
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=demo -c user.email=demo@example.invalid add -A
git -C "$repo" -c user.name=demo -c user.email=demo@example.invalid commit -q -m "version 1"

# The project: an ecosystem file whose `production` environment is this machine.
project="$work/project"
mkdir -p "$project"
sed -e "s|@REPO@|$repo|" -e "s|@PATH@|$work/srv/app|" -e "s|@AGENT@|$work/agent|" \
  "$here/ecosystem.json" > "$project/ecosystem.json"
cd "$project"
export XDG_CACHE_HOME="$work/cache"
# The fleet CA of this demo lives in the scratch directory too.
export PMFLEET_CA_DIR="$work/ca"
trap 'echo; echo "== stop the demo agent and its apps with: PMFLEET_AGENT_HOME=$work/agent $agent kill"' EXIT

echo; echo "== pmfleet ca init"
[ -f "$PMFLEET_CA_DIR/ca.pem" ] || "$pmfleet" ca init

show() {
  echo "-- $work/srv/app/current -> $(readlink "$work/srv/app/current")"
  echo "-- current/built.txt: $(cat "$work/srv/app/current/built.txt")"
  if command -v curl >/dev/null; then echo "-- http://127.0.0.1:3900/ says: $(curl -s http://127.0.0.1:3900/)"; fi
}

echo; echo "== pmfleet deploy production setup"
"$pmfleet" deploy production setup
echo; echo "== pmfleet deploy production"
"$pmfleet" deploy production
show

echo; echo "== a second commit, deployed"
echo 2 > "$repo/VERSION"
git -C "$repo" -c user.name=demo -c user.email=demo@example.invalid commit -q -am "version 2"
"$pmfleet" deploy production
show

echo; echo "== pmfleet deploy production revert 1"
"$pmfleet" deploy production revert 1
show

echo; echo "== pmfleet deploy production list"
"$pmfleet" deploy production list

echo; echo "== pmfleet status"
sleep 1.5   # the agent samples CPU and memory once a second
"$pmfleet" status
echo; echo "== done: the deploy root is $work/srv/app"
echo "== watch it live (q quits): cd $project && PMFLEET_CA_DIR=$PMFLEET_CA_DIR XDG_CACHE_HOME=$XDG_CACHE_HOME $pmfleet monit production"
echo "== or in a browser: the same, with \`$pmfleet dashboard production\`, then open the http://127.0.0.1:7700/?token=... address it prints"
