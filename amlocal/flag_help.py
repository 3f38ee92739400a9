"""Help text for the flags the command modules declare bare: az's wording, once per flag
rather than once per verb (the same flag appears on up to 67 verbs), with `{noun}` standing
for the group (`online endpoint`, `data asset`). Where amlocal accepts a flag only so that
`az ml` scripts run unchanged, the text says what it does here."""

from __future__ import annotations

import argparse

IGNORED = "Accepted so az ml scripts run unchanged; no effect offline."
RECORDED = "Recorded on the compute, as Azure stores it; no effect offline."

FLAG_HELP: dict[str, str] = {
    "--name": "Name of the {noun}.",
    "--file": "Local path to the YAML file containing the Azure ML {noun} specification.",
    "--set": (
        "Update an object by specifying a property path and value to set, e.g. "
        "--set inputs.alpha=0.1 description=x (several pairs after one flag)."
    ),
    "--no-wait": "Do not wait for the long-running operation to finish.",
    "--yes": "Do not prompt for confirmation.",
    "--version": "Version of the {noun}.",
    "--label": "Label of the {noun} (latest is the newest version).",
    "--max-results": "Max number of results to return.",
    "--include-archived": "List archived {noun}s and active {noun}s.",
    "--archived-only": "List archived {noun}s only.",
    "--description": "Description of the {noun}.",
    "--tags": "Space-separated tags: key[=value] [key[=value] ...].",
    "--type": "Type of the {noun}.",
    "--path": "Path to the {noun}'s file or folder (a local path or an azureml:// URI).",
    "--download-path": "Local folder to download into (default: the current folder).",
    "--endpoint-name": "Name of the endpoint.",
    "--deployment-name": "Name of the deployment to target, bypassing the traffic split.",
    "--local": "Accepted; every amlocal endpoint is local.",
    # job
    "--stream": "Stream the job's logs and step transitions until it ends.",
    "--save-as": IGNORED,
    "--skip-validation": IGNORED,
    "--all-results": "List all results (amlocal never pages).",
    "--parent-job-name": "List the child jobs (steps, trials) of this pipeline or sweep job.",
    "--all": "Download all the job's logs and named outputs.",
    "--output-name": "Name of the user-defined output to download.",
    # environment
    "--image": "Docker image of the environment (recorded; steps run in a venv here).",
    "--conda-file": "Local path to a conda specification file.",
    "--build-context": "Local path to the Docker build context (recorded).",
    "--dockerfile-path": "Path to the Dockerfile, relative to the build context (recorded).",
    # online
    "--auth-mode": "Authentication mode: key or aml_token.",
    "--all-traffic": "Send 100% of the endpoint's traffic to this deployment once created.",
    "--skip-script-validation": IGNORED,
    "--request-file": "File containing the request body to send.",
    "--key-type": "Key to regenerate: primary or secondary.",
    "--lines": "Max number of log lines to return (from the end).",
    "--container": "Container to get logs from: inference-server (accepted: storage-initializer).",
    # batch
    "--set-default": "Make this deployment the endpoint's default.",
    "--input-type": "Type of --input: uri_folder or uri_file.",
    "--output-path": "Datastore path for the job's output (azureml://datastores/...).",
    "--job-name": "Name of the job the invocation creates.",
    "--experiment-name": "Experiment the invocation's job is recorded in.",
    "--instance-count": "Instances to use (here: worker process sets).",
    "--mini-batch-size": "Files (or rows) per mini-batch.",
    # schedule
    "--list-view-type": "Which schedules to list: enabled_only, disabled_only or all.",
    # compute
    "--size": RECORDED,
    "--min-instances": RECORDED,
    "--max-instances": RECORDED,
    "--idle-time-before-scale-down": RECORDED,
    "--tier": RECORDED,
    "--location": RECORDED,
    "--identity-type": RECORDED,
    "--user-assigned-identities": RECORDED,
    "--admin-username": RECORDED,
    "--admin-password": RECORDED,
    "--ssh-key-value": RECORDED,
    "--vnet-name": RECORDED,
    "--subnet": RECORDED,
    "--enable-node-public-ip": RECORDED,
    "--resource-id": "ARM id of the resource to attach (recorded).",
    "--namespace": "Kubernetes namespace of the attached compute (recorded).",
}


def fill(parser: argparse.ArgumentParser, group: str) -> None:
    """Give every bare flag of one verb its text from FLAG_HELP."""
    noun = {"data": "data asset", "schedule": "schedule"}.get(group, group.replace("-", " "))
    for action in parser._actions:
        if action.help or not action.option_strings:
            continue
        long = max(action.option_strings, key=len)
        text = FLAG_HELP.get(long)
        if text is not None:
            action.help = text.format(noun=noun).replace("%", "%%")  # argparse %-formats help
