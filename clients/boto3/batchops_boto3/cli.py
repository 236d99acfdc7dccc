"""An AWS CLI (v1) plugin: `aws s3control` job commands to a deployed batchops stack.

Enable it once (the module must be importable by the CLI's Python: `pip install` this package
where `awscli` is installed)::

    aws configure set plugins.batchops batchops_boto3.cli

Then `create-job`, `describe-job`, `list-jobs`, `update-job-priority`, `update-job-status` and
`get/put/delete-job-tagging` go to the batchops API, signed for `execute-api` (the handlers of
`batchops_boto3.Bridge`, on the CLI session's events), when one of these names it, first
found first:

1. `BATCHOPS_API_URL` (environment) or `batchops_api_url` (the profile's configuration): the
   API's URL, the stack's `ApiUrl` output;
2. `BATCHOPS_STACK` (environment) or `batchops_stack` (the profile's configuration): a stack
   name, whose `ApiUrl` is read with CloudFormation DescribeStacks (the caller needs
   `cloudformation:DescribeStacks`), in the CLI's region.

With neither, `aws s3control` is left as it is (S3 Control itself). Other services, and the
other `s3control` commands, are never touched.
"""

import os

from batchops_boto3 import Bridge, api_url_of_stack


def api_url_for(session):
    """The API URL the CLI session's environment or profile names, else None."""
    config = session.get_scoped_config() if session is not None else {}
    url = os.environ.get("BATCHOPS_API_URL") or config.get("batchops_api_url")
    if url:
        return url
    stack = os.environ.get("BATCHOPS_STACK") or config.get("batchops_stack")
    if not stack or session is None:
        return None
    try:
        return api_url_of_stack(session.create_client("cloudformation"), stack)
    except Exception as e:
        raise RuntimeError(f"batchops: cannot read the ApiUrl of stack {stack} (BATCHOPS_STACK): {e}") from e


def awscli_initialize(cli):
    """The CLI's plugin entry point: `cli` is the session's event emitter."""
    seen = {}

    def remember(session, **kwargs):
        seen["session"] = session

    cli.register("session-initialized", remember, unique_id="batchops-session-initialized")
    Bridge(lambda: api_url_for(seen.get("session"))).register(cli)
