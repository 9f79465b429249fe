#!/bin/sh
# `deno task start`: run the daemon with exactly the permissions its config needs.
# Phase one (read + env only, no network, no writes) loads the config and prints the
# grants; phase two execs the daemon with just those (see README, "Permissions"). With
# `--probe` the grants are the probe's: connect to the socket or port, read the config.
set -eu
root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
# `deno task` runs tasks in deno.json's directory: paths the caller gave (`--config
# pilotfish.yaml`, and relative paths inside that config) mean the caller's directory.
if [ -n "${PILOTFISH_TASK_CWD:-}" ]; then
  cd -- "$PILOTFISH_TASK_CWD"
fi
unset PILOTFISH_TASK_CWD
DENO=${DENO:-deno}
flags=$("$DENO" run --quiet --no-prompt --config "$root/deno.json" --allow-read --allow-env \
  "$root/src/permissions/plan_cli.ts" "$@")
eval "exec \"\$DENO\" run --quiet --no-prompt --unstable-no-legacy-abort --no-code-cache --config \"\$root/deno.json\" $flags \"\$root/src/main.ts\" \"\$@\""
