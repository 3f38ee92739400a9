#!/usr/bin/env bash
# Blue/green release of a model to a managed online endpoint, in two steps a person (or a
# GitHub environment's required reviewers) can stand between:
#
#   scripts/blue-green.sh deploy  ENDPOINT CONFIG_DIR MODEL   # idle slot + smoke test
#   scripts/blue-green.sh promote ENDPOINT CONFIG_DIR SLOT    # shift traffic, verify, or roll back
#   scripts/blue-green.sh rollback ENDPOINT SLOT PREVIOUS     # put all traffic back on PREVIOUS
#
# CONFIG_DIR holds endpoint.yml, blue.yml, green.yml and sample-request.json (as
# endpoints/online/diabetes/). MODEL is e.g. azureml:diabetes-model:7 or
# azureml:diabetes-model@latest. The smoke test sends sample-request.json to the new slot
# only (`--deployment-name`), so live callers never see an unverified model, and asserts one
# answer per request item (a finite number, or an object with a "label"). A failed smoke
# test exits 1 with traffic untouched. After the shift, the endpoint is invoked through live
# traffic; if that fails, traffic goes back to the previous slot and the script exits 1.
# Env: AML (default "az ml"), RESOURCE_GROUP/WORKSPACE, CANARY_PERCENT (0 = straight to
# 100), CANARY_SECONDS, EXPECT_MODEL (promote: refuse unless the slot still serves it).
# Writes slot/previous/model to GITHUB_OUTPUT.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SLOTS=(blue green)

# Current live traffic as "name=pct" words, or "absent" when the endpoint does not exist.
traffic_of() {
  local out
  if ! out=$(aml online-endpoint show --name "$1" --output json 2>/dev/null); then
    echo absent
    return
  fi
  json_get traffic <<<"$out" | python3 -c '
import json, sys
raw = sys.stdin.read().strip()
print(" ".join(f"{k}={v}" for k, v in sorted((json.loads(raw) if raw else {}).items())))'
}

# The slot with the most live traffic (empty if none has any).
live_slot() {
  local word best="" best_pct=0 name pct
  for word in $1; do
    name=${word%%=*}
    pct=${word#*=}
    if ((pct > best_pct)); then best=$name; best_pct=$pct; fi
  done
  echo "$best"
}

other_slot() { if [[ "$1" == "${SLOTS[0]}" ]]; then echo "${SLOTS[1]}"; else echo "${SLOTS[0]}"; fi; }

# The smoke test's rules live in src/deploy/deploy_lib.py (standard library only), shared
# with the pipeline's deploy step so both accept the same requests and answers: one finite
# number or one object with a "label" per item of the sample request ({"data": [...]} rows,
# one {"image"|"url": ...} object, or a list of them).
DEPLOY_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/../src/deploy" && pwd)

# Assert an invoke response (possibly JSON-encoded again, as `az ml ... invoke` prints it)
# answers ITEMS items.
check_response() {
  python3 - "$DEPLOY_LIB" "$1" "$2" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from deploy_lib import SmokeTestFailed, check_response
try:
    check_response(200, sys.argv[3], int(sys.argv[2]))
except SmokeTestFailed as exc:
    sys.exit(str(exc))
print(f"{sys.argv[2]} answer(s) as expected")
PY
}

# How many answers the sample request REQUEST_FILE asks for.
request_rows() {
  python3 - "$DEPLOY_LIB" "$1" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
from deploy_lib import request_items
with open(sys.argv[2]) as f:
    print(request_items(json.load(f)))
PY
}

# invoke ENDPOINT REQUEST [SLOT] -> prints the response body; fails if the call fails.
invoke() {
  local args=(online-endpoint invoke --name "$1" --request-file "$2" --output json)
  if [[ -n "${3:-}" ]]; then args+=(--deployment-name "$3"); fi
  aml "${args[@]}"
}

set_traffic() {
  log "traffic on $1: $2"
  aml online-endpoint update --name "$1" --traffic "$2" --output none
}

cmd_deploy() {
  local endpoint=$1 config=$2 model=$3 traffic live slot verb body rows
  for f in endpoint.yml blue.yml green.yml sample-request.json; do
    [[ -f "$config/$f" ]] || die "$config/$f: no such file"
  done
  traffic=$(traffic_of "$endpoint")
  if [[ "$traffic" == absent ]]; then
    log "creating endpoint $endpoint"
    aml online-endpoint create --file "$config/endpoint.yml" --name "$endpoint" --output none
    traffic=""
  fi
  live=$(live_slot "$traffic")
  # Already live (the pipeline's own deploy step, or a rerun of this workflow): nothing to
  # stage, and `promote` of the live slot is a no-op.
  if [[ -n "$live" ]] && [[ "$(aml online-deployment show --name "$live" --endpoint-name "$endpoint" \
    --query model --output tsv)" == *"${model#azureml:}" ]]; then
    log "$live already serves $model with live traffic ($traffic); nothing to deploy"
    gh_output slot "$live"
    gh_output previous "$live"
    gh_output model "$model"
    echo "$live"
    return 0
  fi
  if [[ -n "$live" ]]; then slot=$(other_slot "$live"); else slot=${SLOTS[0]}; fi
  log "live: ${live:-none} (${traffic:-no traffic}); deploying $model to $slot"

  verb=create
  if aml online-deployment show --name "$slot" --endpoint-name "$endpoint" --output none 2>/dev/null; then
    verb=update
  fi
  aml online-deployment "$verb" --file "$config/$slot.yml" --name "$slot" \
    --endpoint-name "$endpoint" --set "model=$model" --output none

  rows=$(request_rows "$config/sample-request.json")
  if ! body=$(invoke "$endpoint" "$config/sample-request.json" "$slot"); then
    aml online-deployment get-logs --name "$slot" --endpoint-name "$endpoint" --lines 50 >&2 || true
    die "smoke test: invoking $slot failed; traffic left unchanged (${traffic:-none})"
  fi
  if ! check_response "$rows" "$body" >&2; then
    die "smoke test on $slot failed; traffic left unchanged (${traffic:-none})"
  fi
  log "smoke test passed on $slot"
  gh_output slot "$slot"
  gh_output previous "$live"
  gh_output model "$model"
  echo "$slot"
}

cmd_promote() {
  local endpoint=$1 config=$2 slot=$3 traffic previous rows body model canary=${CANARY_PERCENT:-0}
  [[ " ${SLOTS[*]} " == *" $slot "* ]] || die "slot must be one of: ${SLOTS[*]}"
  traffic=$(traffic_of "$endpoint")
  [[ "$traffic" != absent ]] || die "endpoint $endpoint does not exist"
  previous=$(live_slot "$traffic")
  if [[ "$previous" == "$slot" ]]; then
    log "$slot already takes the live traffic ($traffic); nothing to do"
    return 0
  fi
  # Between the staging job and an approval, nothing else may have replaced the slot's model.
  if [[ -n "${EXPECT_MODEL:-}" ]]; then
    model=$(aml online-deployment show --name "$slot" --endpoint-name "$endpoint" --query model --output tsv)
    [[ "$model" == *"${EXPECT_MODEL#azureml:}" ]] ||
      die "$slot now serves $model, not the approved $EXPECT_MODEL; traffic left unchanged"
  fi
  rows=$(request_rows "$config/sample-request.json")
  if ((canary > 0)) && [[ -n "$previous" ]]; then
    set_traffic "$endpoint" "$previous=$((100 - canary)) $slot=$canary"
    sleep "${CANARY_SECONDS:-0}"
  fi
  if [[ -n "$previous" ]]; then
    set_traffic "$endpoint" "$slot=100 $previous=0"
  else
    set_traffic "$endpoint" "$slot=100"
  fi
  # Verify through live traffic (no --deployment-name): what callers now get.
  if body=$(invoke "$endpoint" "$config/sample-request.json") && check_response "$rows" "$body" >&2; then
    log "$slot serves 100% of $endpoint"
    gh_output previous "$previous"
    return 0
  fi
  if [[ -n "$previous" ]]; then
    cmd_rollback "$endpoint" "$slot" "$previous"
  else
    set_traffic "$endpoint" "$slot=0"
  fi
  die "live check failed after the shift to $slot; rolled back to ${previous:-no traffic}"
}

cmd_rollback() {
  local endpoint=$1 slot=$2 previous=$3
  [[ -n "$previous" ]] || die "rollback needs the previous slot"
  set_traffic "$endpoint" "$previous=100 $slot=0"
  log "rolled back: $previous serves 100% of $endpoint"
}

main() {
  (($# >= 1)) || die "usage: $0 deploy|promote|rollback ..."
  local cmd=$1
  shift
  case "$cmd" in
    deploy) (($# == 3)) || die "usage: $0 deploy ENDPOINT CONFIG_DIR MODEL"; cmd_deploy "$@" ;;
    promote) (($# == 3)) || die "usage: $0 promote ENDPOINT CONFIG_DIR SLOT"; cmd_promote "$@" ;;
    rollback) (($# == 3)) || die "usage: $0 rollback ENDPOINT SLOT PREVIOUS"; cmd_rollback "$@" ;;
    *) die "unknown command $cmd (deploy, promote, rollback)" ;;
  esac
}

main "$@"
