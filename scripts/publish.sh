#!/usr/bin/env bash
# Publish a pipeline's components and their environments to a registry, so every workspace
# (prod) runs exactly what dev tested, on its own data ("promote the pipeline"):
#
#   scripts/publish.sh REGISTRY_YAML PIPELINE_YAML [JOB CREATE FLAGS...]
#
# For each job of PIPELINE_YAML whose component is a local file: its environment
# (`azureml:<env>@latest|:<v>`, defined in environments/<file>.yml) is created in the
# registry, then the component with `environment:` pointing at the registry's copy. Registry
# versions are immutable: a version already there is left as it is (bump `version:` to publish
# a change). A component with an inline (anonymous) environment cannot be in a registry and
# stays a local file. Then, with PROD_WORKSPACE set (PROD_RESOURCE_GROUP), prod retrains:
# `job create -f PIPELINE_YAML --set jobs.<job>.component=azureml://registries/...` (one per
# published component, the extra flags after them) in PROD_WORKSPACE, streamed; without it the
# --set flags are printed. Env: AML (default "az ml").
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

(($# >= 2)) || die "usage: $0 REGISTRY_YAML PIPELINE_YAML [JOB CREATE FLAGS...]"
registry_yaml=$1 pipeline=$2
shift 2
registry=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["name"])' "$registry_yaml")
reg() { "${AML_CMD[@]}" "$@" --registry-name "$registry"; }

if ! "${AML_CMD[@]}" registry show --name "$registry" --output none 2>/dev/null; then
  log "creating registry $registry from $registry_yaml"
  "${AML_CMD[@]}" registry create --file "$registry_yaml" --output none
fi

# job|component file|name|version|env name|env version|env file (env fields empty: inline)
plan=$(python3 - "$ROOT" "$pipeline" <<'PY'
import pathlib, re, sys, yaml
root, pipeline = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
envs = {}
for f in sorted((root / "environments").glob("*.yml")):
    doc = yaml.safe_load(f.read_text()) or {}
    if "$schema" in doc and doc.get("name"):
        envs[doc["name"]] = (str(doc.get("version", "1")), str(f))
for job, node in (yaml.safe_load(pipeline.read_text()).get("jobs") or {}).items():
    comp = node.get("component")
    if not isinstance(comp, str) or comp.startswith("azureml:"):
        continue
    path = (pipeline.parent / comp).resolve()
    doc = yaml.safe_load(path.read_text())
    env = doc.get("environment")
    m = re.match(r"^azureml:([^:@]+)(?:[:@].*)?$", env) if isinstance(env, str) else None
    name, version, file = (m[1], *envs[m[1]]) if m and m[1] in envs else ("", "", "")
    print("|".join([job, str(path), doc["name"], str(doc.get("version", "1")), name, version, file]))
PY
)

sets=()
while IFS='|' read -r job file name version env_name env_version env_file; do
  if [[ -z "$env_name" ]]; then
    log "$job: $name keeps its inline environment: a registry holds only named assets; it stays a local file"
    continue
  fi
  env_uri="azureml://registries/$registry/environments/$env_name/versions/$env_version"
  if ! reg environment show --name "$env_name" --version "$env_version" --output none 2>/dev/null; then
    log "publishing environment $env_name:$env_version"
    reg environment create --file "$env_file" --output none
  fi
  if reg component show --name "$name" --version "$version" --output none 2>/dev/null; then
    log "$registry already holds component $name:$version"
  else
    log "publishing component $name:$version (environment $env_uri)"
    reg component create --file "$file" --set "environment=$env_uri" --output none
  fi
  sets+=(--set "jobs.$job.component=azureml://registries/$registry/components/$name/versions/$version")
done <<<"$plan"

if [[ -z "${PROD_WORKSPACE:-}" ]]; then
  printf '%s\n' "${sets[@]}"
  exit 0
fi
prod_workspace "$PROD_WORKSPACE" "${PROD_RESOURCE_GROUP:-${RESOURCE_GROUP:-}}"
export WORKSPACE=$PROD_WORKSPACE RESOURCE_GROUP=${PROD_RESOURCE_GROUP:-${RESOURCE_GROUP:-}}
log "retraining in $PROD_WORKSPACE from $registry: ${sets[*]}"
aml job create --file "$pipeline" --stream --output none "${sets[@]}" "$@"
