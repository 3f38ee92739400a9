#!/usr/bin/env bash
# Submit an Azure ML job and wait for it, surviving OIDC token expiry.
#
#   scripts/run-job.sh pipelines/train.yml [--set inputs.alpha=0.5 ...]
#
# `az ml job create --stream` dies when the GitHub OIDC login lapses mid-job (azure/login
# #372, azure-cli #28708), which fails the workflow although the job goes on. Instead this
# submits, prints the studio link, and polls `az ml job show` with a re-login guard
# (scripts/lib.sh). If the workflow is cancelled, the job is cancelled too, so a cancelled
# run leaves no orphan consuming the cluster.
# Env: AML (default "az ml"), RESOURCE_GROUP/WORKSPACE (default: az configure --defaults),
# POLL_SECONDS, MAX_WAIT_SECONDS, REFRESH_SECONDS. Writes job_name/status to GITHUB_OUTPUT.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# >= 1)) || die "usage: $0 JOB_YAML [az ml job create flags...]"
file=$1
shift
[[ -f "$file" ]] || die "$file: no such file"

name=$(aml job create --file "$file" "$@" --query name --output tsv)
[[ -n "$name" ]] || die "az ml job create returned no job name"
gh_output job_name "$name"
log "submitted $name"
studio=$(aml job show --name "$name" --query services.Studio.endpoint --output tsv 2>/dev/null || true)
if [[ -n "$studio" ]]; then log "studio: $studio"; fi

cancel() {
  log "interrupted: cancelling $name"
  aml job cancel --name "$name" >/dev/null 2>&1 || true
  exit 130
}
trap cancel INT TERM

status=$(wait_for_job "$name") || true
gh_output status "$status"
if [[ "$status" != Completed ]]; then
  die "job $name ended $status (logs: az ml job download --name $name --all)"
fi
log "job $name completed"
