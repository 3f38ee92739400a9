# shellcheck shell=bash
# Shared helpers for scripts/*.sh. Source it; it defines functions and nothing runs.
#
# Every Azure ML call goes through `aml` so the same script drives Azure (`az ml`, the
# default) or the offline engine (AML=".venv/bin/amlocal"), exactly like the Makefile.

# The `az ml`-compatible command, split into words: AML="az ml" or AML=".venv/bin/amlocal".
read -r -a AML_CMD <<<"${AML:-az ml}"

# The script's real stdout, for workflow commands (::add-mask::) issued inside $(...).
exec 3>&1

log() { printf '%s %s\n' "[$(date -u +%H:%M:%S)]" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Workspace flags only when given: otherwise `az configure --defaults group=.. workspace=..`.
workspace_flags() {
  WS_FLAGS=()
  if [[ -n "${RESOURCE_GROUP:-}" ]]; then WS_FLAGS+=(--resource-group "$RESOURCE_GROUP"); fi
  if [[ -n "${WORKSPACE:-}" ]]; then WS_FLAGS+=(--workspace-name "$WORKSPACE"); fi
}

aml() {
  workspace_flags
  "${AML_CMD[@]}" "$@" "${WS_FLAGS[@]}"
}

# prod_workspace WS RG: the workspace exists (created if not: offline that is instant; on
# Azure scripts/azure-setup.sh or docs/azure.md made it) and has this repository's
# environments and data assets (scripts/register-assets.sh, only missing versions).
prod_workspace() {
  local group=()
  if [[ -n "${2:-}" ]]; then group=(--resource-group "$2"); fi
  if ! "${AML_CMD[@]}" workspace show --name "$1" "${group[@]}" --output none 2>/dev/null; then
    log "creating workspace $1"
    "${AML_CMD[@]}" workspace create --name "$1" "${group[@]}" --output none
  fi
  WORKSPACE=$1 RESOURCE_GROUP=${2:-} "$(dirname "${BASH_SOURCE[0]}")/register-assets.sh" >/dev/null
}

# Write key=value to the step's outputs under GitHub Actions (a no-op elsewhere).
gh_output() {
  if [[ -n "${GITHUB_OUTPUT:-}" ]]; then printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"; fi
}

# -- OIDC re-login ---------------------------------------------------------------------------
# azure/login with OIDC hands az a GitHub ID token that expires after minutes; az cannot
# refresh its access token from it (~60-90 min later: AADSTS700024 "Client assertion is not
# within its valid time range"). Long waits therefore fetch a fresh GitHub ID token and log
# in again before the access token can lapse. Outside Actions (no token URL) it does nothing.
LAST_LOGIN=$(date +%s)
REFRESH_SECONDS=${REFRESH_SECONDS:-2400}

oidc_relogin() {
  if [[ -z "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" || -z "${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-}" ]]; then
    return 0
  fi
  : "${AZURE_CLIENT_ID:?AZURE_CLIENT_ID is needed to log in again}"
  : "${AZURE_TENANT_ID:?AZURE_TENANT_ID is needed to log in again}"
  local response token
  response=$(curl -sSf -H "Authorization: bearer ${ACTIONS_ID_TOKEN_REQUEST_TOKEN}" \
    "${ACTIONS_ID_TOKEN_REQUEST_URL}&audience=api://AzureADTokenExchange") ||
    die "could not fetch a GitHub OIDC token (does the job have permissions: id-token: write?)"
  token=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["value"])' <<<"$response")
  echo "::add-mask::${token}" >&3
  az login --service-principal --username "$AZURE_CLIENT_ID" --tenant "$AZURE_TENANT_ID" \
    --federated-token "$token" --allow-no-subscriptions --output none
  if [[ -n "${AZURE_SUBSCRIPTION_ID:-}" ]]; then
    az account set --subscription "$AZURE_SUBSCRIPTION_ID"
  fi
  LAST_LOGIN=$(date +%s)
  log "logged in again with a fresh OIDC token"
}

# Re-login when the last login is older than REFRESH_SECONDS (default 40 min: well inside
# the shortest access-token lifetime Entra issues, 60 min).
refresh_login_if_due() {
  if (($(date +%s) - LAST_LOGIN >= REFRESH_SECONDS)); then oidc_relogin; fi
}

# -- jobs ----------------------------------------------------------------------------------
# Poll a job until it ends, instead of `az ml job create --stream`: a stream cannot survive
# a token refresh, a poll loop can. Prints the final status; returns 0 only for Completed.
wait_for_job() {
  local name=$1 status="" started now out
  # 30 s between polls of Azure; a local job answers in ~0.1 s and is often done in seconds.
  local default_poll=30
  if [[ "${AML_CMD[0]}" == *amlocal ]]; then default_poll=1; fi
  local poll=${POLL_SECONDS:-$default_poll} max=${MAX_WAIT_SECONDS:-10800}
  started=$(date +%s)
  while true; do
    refresh_login_if_due
    if ! out=$(aml job show --name "$name" --query status --output tsv 2>&1); then
      if [[ "$out" == *AADSTS* || "$out" == *expired* ]]; then
        log "token problem while polling ($out); logging in again"
        oidc_relogin
        continue
      fi
      die "az ml job show failed: $out"
    fi
    if [[ "$out" != "$status" ]]; then log "job $name: $out"; fi
    status=$out
    case "$status" in
      Completed) echo "$status"; return 0 ;;
      Failed | Canceled | NotResponding) echo "$status"; return 1 ;;
    esac
    now=$(date +%s)
    if ((now - started > max)); then
      log "job $name still $status after ${max}s: cancelling it"
      aml job cancel --name "$name" >/dev/null || true
      echo "TimedOut"
      return 1
    fi
    sleep "$poll"
  done
}

# -- JSON ----------------------------------------------------------------------------------
# `json_get FIELD` reads JSON on stdin and prints one field ("" if absent); python3, not jq,
# because the venv (and every runner) has it.
json_get() {
  python3 -c '
import json, sys
value = json.load(sys.stdin)
for part in sys.argv[1].split("."):
    value = value.get(part) if isinstance(value, dict) else None
print("" if value is None else (json.dumps(value) if isinstance(value, (dict, list)) else value))
' "$1"
}

# -- idempotent creation ---------------------------------------------------------------------
CREATED=0

# ensure WHAT SHOW_CMD... -- CREATE_CMD...: run CREATE only when SHOW fails (az exits
# non-zero for a resource that does not exist). Counts creations in CREATED.
ensure() {
  local what=$1 show=() create=()
  shift
  while (($#)) && [[ "$1" != -- ]]; do show+=("$1"); shift; done
  shift
  create=("$@")
  if "${show[@]}" --output none >/dev/null 2>&1; then
    log "exists: $what"
  else
    log "creating: $what"
    "${create[@]}" --output none
    CREATED=$((CREATED + 1))
  fi
}

# Top-level `name:` / `version:` of an Azure ML YAML (no YAML parser needed on the host).
yaml_field() { sed -n "s/^$1:[[:space:]]*[\"']\{0,1\}\([^\"'#[:space:]]*\).*/\1/p" "$2" | head -n 1; }
