#!/usr/bin/env bash
# Supply-chain checks with cargo-deny and deny.toml: licences, bans and sources always; advisories
# when the RustSec advisory database can be had. cargo-deny clones it with git from its home URL
# below; TOLLGATE_ADVISORY_DB, a git URL or the path of a git copy of that database, is cloned in
# its place (git's url.<base>.insteadOf). Where neither answers, the advisories check is skipped
# and this script says so, and why.
set -euo pipefail
cd "$(dirname "$0")/.."

# CI's tool, not the tests': installed here, from source (about 8 minutes on two idle cores,
# 17 on shared ones), only where it is missing.
if ! cargo deny --version >/dev/null 2>&1; then
  echo "deny: installing cargo-deny" >&2
  cargo install --locked cargo-deny --version 0.20.2
fi

# The inclusion graph of every duplicated crate runs to thousands of lines; `cargo deny check
# bans` alone prints it.
cargo deny --locked check --hide-inclusion-graph licenses bans sources

upstream=https://github.com/RustSec/advisory-db
if [ -n "${TOLLGATE_ADVISORY_DB:-}" ]; then
  db=$TOLLGATE_ADVISORY_DB
  [ -d "$db" ] && db="file://$(cd "$db" && pwd)"
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="url.$db.insteadOf" GIT_CONFIG_VALUE_0="$upstream"
  from="$TOLLGATE_ADVISORY_DB (TOLLGATE_ADVISORY_DB)"
else
  from=$upstream
fi
if ! reason=$(timeout 60 git ls-remote --exit-code "$upstream" refs/heads/main 2>&1 >/dev/null); then
  echo "deny: advisories check SKIPPED: the advisory database at $from cannot be read:" >&2
  echo "deny:   ${reason:-git ls-remote timed out or found no main branch}" >&2
  echo "deny: set TOLLGATE_ADVISORY_DB to a git URL or path of a copy of $upstream to run it" >&2
  exit 0
fi
status=0
cargo deny --locked check --hide-inclusion-graph advisories || status=$?
for repo in "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-*/; do
  [ -d "$repo/.git" ] || continue
  echo "deny: advisory database from $from, $(git -C "$repo" log -1 --format='commit %h of %cs')" >&2
done
exit $status
