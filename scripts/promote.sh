#!/usr/bin/env bash
# Promote the dev workspace's champion model to prod through a registry, Microsoft's
# cross-workspace MLOps path ("Machine learning registries for MLOps"):
#
#   scripts/promote.sh REGISTRY_YAML MODEL_NAME ENDPOINT CONFIG_DIR
#
# 1. finds the champion version of MODEL_NAME in the dev workspace (the version tagged
#    champion=true by the pipeline's register step);
# 2. shares it to the registry (`model share`), unless the registry already holds that
#    version; the shared model keeps its test metrics (tags) and lineage (properties);
# 3. deploys azureml://registries/<registry>/models/<name>/versions/<v> to ENDPOINT in the
#    prod workspace with scripts/blue-green.sh's rules (idle slot, smoke test, traffic
#    shift, rollback), which does nothing when prod already serves that version.
# Env: AML (default "az ml"), DEV_WORKSPACE / PROD_WORKSPACE (empty: the default workspace),
# DEV_RESOURCE_GROUP / PROD_RESOURCE_GROUP (default RESOURCE_GROUP). Writes model= to
# GITHUB_OUTPUT.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

(($# == 4)) || die "usage: $0 REGISTRY_YAML MODEL_NAME ENDPOINT CONFIG_DIR"
registry_yaml=$1 model_name=$2 endpoint=$3 config=$4
[[ -f "$registry_yaml" ]] || die "$registry_yaml: no such file"
registry=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$registry_yaml")
DEV_RESOURCE_GROUP=${DEV_RESOURCE_GROUP:-${RESOURCE_GROUP:-}}
PROD_RESOURCE_GROUP=${PROD_RESOURCE_GROUP:-${RESOURCE_GROUP:-}}

# A registry is not in a workspace: its calls take --registry-name and no workspace flag.
reg() { "${AML_CMD[@]}" "$@" --registry-name "$registry"; }
dev() { WORKSPACE=${DEV_WORKSPACE:-} RESOURCE_GROUP=$DEV_RESOURCE_GROUP aml "$@"; }

if ! "${AML_CMD[@]}" registry show --name "$registry" --output none 2>/dev/null; then
  log "creating registry $registry from $registry_yaml"
  "${AML_CMD[@]}" registry create --file "$registry_yaml" --output none \
    ${DEV_RESOURCE_GROUP:+--resource-group "$DEV_RESOURCE_GROUP"}
fi

version=$(dev model list --name "$model_name" --query "[?tags.champion=='true'] | [0].version" --output tsv)
[[ -n "$version" ]] || die "no champion version of $model_name in the dev workspace (run make train first)"
uri="azureml://registries/$registry/models/$model_name/versions/$version"

if reg model show --name "$model_name" --version "$version" --output none 2>/dev/null; then
  log "$registry already holds $model_name:$version (registry versions are immutable)"
else
  log "sharing $model_name:$version from dev to $registry"
  dev model share --name "$model_name" --version "$version" --registry-name "$registry" --output none
fi
gh_output model "$uri"

if [[ -n "${PROD_WORKSPACE:-}" ]]; then prod_workspace "$PROD_WORKSPACE" "$PROD_RESOURCE_GROUP"; fi
export WORKSPACE=${PROD_WORKSPACE:-} RESOURCE_GROUP=$PROD_RESOURCE_GROUP
slot=$("$HERE/blue-green.sh" deploy "$endpoint" "$config" "$uri")
"$HERE/blue-green.sh" promote "$endpoint" "$config" "$slot"
log "prod serves $uri on $endpoint"
