#!/usr/bin/env bash
# Which model version did a training pipeline register? (Empty when the gate said no.)
#
#   scripts/registered-model.sh JOB_NAME [OUTPUT_NAME]
#
# Downloads the pipeline output OUTPUT_NAME (default: registration, written by
# components/register_model.yml as model_info.json {"registered", "name", "version"}) and
# prints azureml:NAME:VERSION, or nothing if nothing was registered. Writes
# registered=true|false and model=... to GITHUB_OUTPUT, so later jobs deploy exactly the
# version this run produced, never "@latest" (which another run may have moved).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# >= 1)) || die "usage: $0 JOB_NAME [OUTPUT_NAME]"
job=$1 output=${2:-registration}
dir=$(mktemp -d)
aml job download --name "$job" --output-name "$output" --download-path "$dir" --output none
info=$(find "$dir" -name model_info.json -type f | head -n 1)
[[ -n "$info" ]] || die "job $job output $output has no model_info.json"

if [[ "$(json_get registered <"$info")" == True ]]; then
  model="azureml:$(json_get name <"$info"):$(json_get version <"$info")"
  log "job $job registered $model"
  gh_output registered true
  gh_output model "$model"
  echo "$model"
else
  log "job $job registered nothing: $(json_get reason <"$info")"
  gh_output registered false
fi
