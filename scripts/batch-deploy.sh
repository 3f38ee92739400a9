#!/usr/bin/env bash
# Create or update a batch endpoint and deployment, score a folder, check the output.
#
#   scripts/batch-deploy.sh ENDPOINT CONFIG_DIR DEPLOYMENT_YML INPUT_FOLDER
#   e.g. scripts/batch-deploy.sh diabetes-batch-abc endpoints/batch/diabetes \
#          endpoints/batch/diabetes/deployment.yml data/diabetes-batch
#
# The deployment becomes the endpoint's default only after its own scoring job produced one
# prediction per input row: a broken deployment never replaces a working default.
# Env: AML (default "az ml"), RESOURCE_GROUP/WORKSPACE, POLL_SECONDS, MAX_WAIT_SECONDS,
# OUTPUT_DIR (default: batch-output/<job> under the current folder, the project, so the
# predictions stay where `make batch` ran; batch-output/ is git-ignored). Writes job_name/predictions to GITHUB_OUTPUT.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 4)) || die "usage: $0 ENDPOINT CONFIG_DIR DEPLOYMENT_YML INPUT_FOLDER"
endpoint=$1 config=$2 deployment_yml=$3 input=$4
for f in "$config/endpoint.yml" "$deployment_yml"; do [[ -f "$f" ]] || die "$f: no such file"; done
[[ -d "$input" ]] || die "$input: no such folder"
deployment=$(sed -n 's/^name:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$deployment_yml" | head -n 1)
[[ -n "$deployment" ]] || die "$deployment_yml has no name:"

if aml batch-endpoint show --name "$endpoint" --output none 2>/dev/null; then
  log "endpoint $endpoint exists"
else
  log "creating batch endpoint $endpoint"
  aml batch-endpoint create --file "$config/endpoint.yml" --name "$endpoint" --output none
fi

if aml batch-deployment show --name "$deployment" --endpoint-name "$endpoint" --output none 2>/dev/null; then
  log "updating deployment $deployment"
  aml batch-deployment update --file "$deployment_yml" --endpoint-name "$endpoint" --output none
else
  log "creating deployment $deployment"
  aml batch-deployment create --file "$deployment_yml" --endpoint-name "$endpoint" --output none
fi

# Score with this deployment explicitly, whatever the current default is.
job=$(aml batch-endpoint invoke --name "$endpoint" --deployment-name "$deployment" \
  --input "$input" --input-type uri_folder --query name --output tsv)
[[ -n "$job" ]] || die "batch-endpoint invoke returned no job name"
gh_output job_name "$job"
log "scoring job $job"
status=$(wait_for_job "$job") || die "scoring job $job ended ${status:-badly}"

out=${OUTPUT_DIR:-batch-output/$job}
# Batch jobs name their output `score` (predictions.csv with output_action: append_row).
aml job download --name "$job" --output-name score --download-path "$out" --output none
predictions=$(find "$out" -name predictions.csv -type f | head -n 1)
[[ -n "$predictions" ]] || die "job $job produced no predictions.csv under $out"

# One prediction line per data row of every input CSV (each CSV has a header line).
expected=$(find "$input" -name '*.csv' -type f -exec tail -n +2 {} \; | grep -c . || true)
actual=$(grep -c . "$predictions" || true)
if [[ "$actual" != "$expected" ]]; then
  die "$predictions has $actual rows, expected $expected (one per input row)"
fi
log "$actual predictions for $expected input rows in $predictions"
gh_output predictions "$predictions"

aml batch-endpoint update --name "$endpoint" --set "defaults.deployment_name=$deployment" --output none
log "$deployment is the default deployment of $endpoint"
