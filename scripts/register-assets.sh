#!/usr/bin/env bash
# Register the environments and data assets the pipelines reference, from their YAML.
#
#   scripts/register-assets.sh            # environments/*.yml and data/*.yml
#
# Azure ML assets are immutable per version: creating an existing name:version again fails
# (or, for identical content, does nothing useful), so each one is created only when
# `show` does not find it. Bump `version:` in the YAML to publish a change. Run by
# scripts/azure-setup.sh and by the training workflow before `az ml job create`.
# Prints the number of assets it created on its last line.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

for file in "$ROOT"/environments/*.yml "$ROOT"/data/*.yml; do
  grep -q '^[$]schema:' "$file" || continue # conda specs are read through the environments
  name=$(yaml_field name "$file")
  version=$(yaml_field version "$file")
  [[ -n "$name" && -n "$version" ]] || die "$file: needs a top-level name: and version:"
  kind=environment
  if [[ "$file" == "$ROOT"/data/* ]]; then kind=data; fi
  ensure "$kind $name:$version" \
    aml "$kind" show --name "$name" --version "$version" -- \
    aml "$kind" create --file "$file"
done
echo "$CREATED"
