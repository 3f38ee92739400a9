#!/usr/bin/env bash
# One-command, idempotent Azure setup for this repository (docs/azure.md explains each step).
#
#   GITHUB_REPO=owner/name RESOURCE_GROUP=rg-diabetes WORKSPACE=mlw-diabetes \
#     LOCATION=eastus scripts/azure-setup.sh
#
# Creates only what is missing, so a second run changes nothing:
#   resource group -> workspace -> compute cluster (compute/*.yml) -> environments
#   (environments/*.yml) -> data assets (data/*.yml) -> a user-assigned identity for GitHub
#   Actions with federated credentials (OIDC, no secret) -> role assignments for that
#   identity and for the cluster's identity (the pipeline's deploy step).
# Run it as someone who may assign roles on the resource group (Owner, or Contributor +
# User Access Administrator). It ends by printing the repository variables to set.
# Env: SUBSCRIPTION (default: the current one), IDENTITY_NAME, ENVIRONMENTS (GitHub
# environments that deploy; default "staging production"), AML_ROLE.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

: "${GITHUB_REPO:?set GITHUB_REPO=owner/name (the repository whose workflows log in)}"
: "${RESOURCE_GROUP:?set RESOURCE_GROUP}"
: "${WORKSPACE:?set WORKSPACE}"
LOCATION=${LOCATION:-eastus}
IDENTITY_NAME=${IDENTITY_NAME:-id-${WORKSPACE}-github}
ENVIRONMENTS=${ENVIRONMENTS:-staging production}
# Submit jobs, register assets, create/update endpoints and deployments, invoke them; but not
# create computes or change the workspace (that stays with whoever runs this script).
AML_ROLE=${AML_ROLE:-AzureML Data Scientist}

if [[ -n "${SUBSCRIPTION:-}" ]]; then az account set --subscription "$SUBSCRIPTION"; fi
SUBSCRIPTION_ID=$(az account show --query id --output tsv)
TENANT_ID=$(az account show --query tenantId --output tsv)
log "subscription $SUBSCRIPTION_ID, tenant $TENANT_ID"

ensure "resource group $RESOURCE_GROUP" \
  az group show --name "$RESOURCE_GROUP" -- \
  az group create --name "$RESOURCE_GROUP" --location "$LOCATION"

if ! az extension show --name ml --output none >/dev/null 2>&1; then
  az extension add --name ml --yes --output none
fi

ensure "workspace $WORKSPACE" \
  az ml workspace show --name "$WORKSPACE" --resource-group "$RESOURCE_GROUP" -- \
  az ml workspace create --name "$WORKSPACE" --resource-group "$RESOURCE_GROUP" --location "$LOCATION"

for file in "$ROOT"/compute/*.yml; do
  name=$(yaml_field name "$file")
  ensure "compute $name" \
    aml compute show --name "$name" -- \
    aml compute create --file "$file"
done

# Environments and data assets: the same script the training workflow runs.
CREATED=$((CREATED + $("$ROOT/scripts/register-assets.sh" | tail -n 1)))

ensure "identity $IDENTITY_NAME" \
  az identity show --name "$IDENTITY_NAME" --resource-group "$RESOURCE_GROUP" -- \
  az identity create --name "$IDENTITY_NAME" --resource-group "$RESOURCE_GROUP" --location "$LOCATION"
CLIENT_ID=$(az identity show --name "$IDENTITY_NAME" --resource-group "$RESOURCE_GROUP" --query clientId --output tsv)
PRINCIPAL_ID=$(az identity show --name "$IDENTITY_NAME" --resource-group "$RESOURCE_GROUP" --query principalId --output tsv)

# GitHub's OIDC token names its subject: jobs with `environment:` get
# repo:O/R:environment:NAME, other jobs on main get repo:O/R:ref:refs/heads/main.
subjects=("repo:${GITHUB_REPO}:ref:refs/heads/main")
for env in $ENVIRONMENTS; do subjects+=("repo:${GITHUB_REPO}:environment:${env}"); done
for subject in "${subjects[@]}"; do
  cred=$(printf '%s' "github-${subject#repo:}" | tr -c 'A-Za-z0-9-' '-' | cut -c1-120)
  ensure "federated credential $cred ($subject)" \
    az identity federated-credential show --name "$cred" --identity-name "$IDENTITY_NAME" \
    --resource-group "$RESOURCE_GROUP" -- \
    az identity federated-credential create --name "$cred" --identity-name "$IDENTITY_NAME" \
    --resource-group "$RESOURCE_GROUP" --issuer https://token.actions.githubusercontent.com \
    --subject "$subject" --audiences api://AzureADTokenExchange
done

WORKSPACE_ID=$(az ml workspace show --name "$WORKSPACE" --resource-group "$RESOURCE_GROUP" --query id --output tsv)

# assign PRINCIPAL ROLE SCOPE: create the role assignment unless it exists.
assign() {
  local principal=$1 role=$2 scope=$3 count
  count=$(az role assignment list --assignee "$principal" --role "$role" --scope "$scope" \
    --query "length(@)" --output tsv)
  if [[ "$count" != 0 ]]; then
    log "exists: $role for $principal"
    return
  fi
  log "creating: $role for $principal on ${scope##*/}"
  az role assignment create --assignee-object-id "$principal" --assignee-principal-type ServicePrincipal \
    --role "$role" --scope "$scope" --output none
  CREATED=$((CREATED + 1))
}

# GitHub Actions: jobs, assets, endpoints, deployments, invoke.
assign "$PRINCIPAL_ID" "$AML_ROLE" "$WORKSPACE_ID"
# The pipeline's deploy step runs as each cluster's system-assigned identity and creates or
# updates online deployments and invokes them, so that identity needs the same role.
for file in "$ROOT"/compute/*.yml; do
  name=$(yaml_field name "$file")
  compute_principal=$(aml compute show --name "$name" --query identity.principal_id --output tsv)
  if [[ -n "$compute_principal" ]]; then
    assign "$compute_principal" "$AML_ROLE" "$WORKSPACE_ID"
  else
    log "compute $name has no managed identity: the pipeline's deploy step cannot call Azure ML"
  fi
done

log "done: created $CREATED resource(s)"
cat <<EOF
Set these repository variables (Settings > Secrets and variables > Actions > Variables),
e.g. with the GitHub CLI:
  gh variable set AZURE_CLIENT_ID --body $CLIENT_ID
  gh variable set AZURE_TENANT_ID --body $TENANT_ID
  gh variable set AZURE_SUBSCRIPTION_ID --body $SUBSCRIPTION_ID
  gh variable set AZURE_RESOURCE_GROUP --body $RESOURCE_GROUP
  gh variable set AZURE_WORKSPACE --body $WORKSPACE
  gh variable set ENDPOINT_SUFFIX --body <3-8 letters/digits unique to you in $LOCATION>
and create the GitHub environments: $ENVIRONMENTS (production with required reviewers).
EOF
