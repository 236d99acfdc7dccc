"""boto3's `s3control` client against a deployed batchops stack.

A deployed batchops API is API Gateway (REST, `AWS_IAM` authorization) at the stack's `ApiUrl`
(`https://ID.execute-api.REGION.amazonaws.com/v1`). It takes S3 Control's job requests
(`/v20180820/jobs...`, with `x-amz-account-id`) but only when they are SigV4-signed for the
service `execute-api` and sent to its own host. A stock `s3control` client signs for `s3`
(botocore's `s3v4` signer) and sends job operations to `{AccountId}.` + its endpoint's host:
API Gateway refuses the first (403) and nothing answers the second. `attach(client, api_url)`
changes both for the job operations of one client, through botocore's own events::

    import batchops_boto3
    s3control = batchops_boto3.client(stack="batchops")      # ApiUrl from DescribeStacks
    s3control.create_job(AccountId="123456789012", ...)

Where the `{AccountId}.` comes from, in botocore 1.43 (client.py `_make_api_call`):

1. The service model: every job operation has `endpoint.hostPrefix = "{AccountId}."`, which the
   serializer turns into `host_prefix`. botocore itself deletes it from the model
   (`handlers.remove_accid_host_prefix_from_model`, on `before-parameter-build.s3-control`),
   and `Config(inject_host_prefix=False)` drops it too (`_convert_to_request_dict`).
2. The endpoint ruleset (`data/s3control/2018-08-20/endpoint-rule-set-1.json.gz`): with an
   endpoint set, the rule `RequiresAccountId == true && isSet(AccountId)` answers
   `{url#scheme}://{AccountId}.{url#authority}{url#path}` with the auth scheme sigv4 /
   signingName `s3`. `RequiresAccountId` is a static context parameter of each job operation
   and `AccountId` the operation's own `AccountId` member (a context parameter);
   `EndpointRulesetResolver._get_provider_params` takes context parameters before builtins,
   so a `before-endpoint-resolution.s3-control` handler (which may change only the builtins:
   `SDK::Endpoint`, `AWS::Region`...) cannot take the prefix out. The member cannot be taken
   out of the parameters either: the same dict is serialized right after, and it is what
   becomes the `x-amz-account-id` header the API scopes jobs by (and a required member).
   `inject_host_prefix=False` does not reach the ruleset (rule 2 is why the SDK tests reach
   `batchops local` through a proxy).

So the ruleset's URL is not the one to keep. botocore moves a request to another endpoint
itself in its S3 region redirector: it sets the request dict's `url` and its signing context
(`S3RegionRedirectorv2.redirect_from_error` on `needs-retry.s3`; the deprecated
`S3RegionRedirector` did it on `before-call.s3`, `set_request_url` and `redirect_from_cache`).
Here that is done on `before-call.s3-control.<Op>`, which receives the serialized request dict
before any request object exists, so everything after it sees one URL: the handler makes the
URL again with botocore's own `awsrequest.prepare_request_dict`, the function
`_convert_to_request_dict` made it with, from the API URL and the operation's serialized path
and query (`/v1` + `/v20180820/jobs/{id}`, botocore's percent-encoding): no string of the
request is edited, the host has no account, and headers and body are botocore's
(`x-amz-account-id` included). The same handler puts the signing context botocore reads
(`context["signing"]`): signing name `execute-api`, and the region of an `execute-api` host
(else the client's). Then
`choose-signer.s3-control.<Op>` answers `v4` (botocore's `SigV4Auth`, API Gateway's
signature with its double-encoded path; botocore's default handler would answer `s3v4` only
for the S3 signing names anyway), and `RequestSigner.sign` signs the final URL with the
client's credentials, in `request-created`, as for any call. Nothing is done in `before-send`,
so retries, the checksum and the user agent stay botocore's.

Only the eight job operations (`JOB_OPERATIONS`, the API's routes) of the attached client
change; its other operations (access points, Storage Lens ...) still go to S3 Control, and
other clients, even of the same session, are untouched (each client has its own copy of the
session's events). TLS: the client's `verify` (`boto3.client(..., verify="ca.pem")`) applies
to the API's `https` URL as to any endpoint.
"""

import re
from urllib.parse import urlsplit

from botocore.awsrequest import prepare_request_dict
from botocore.config import Config

__all__ = ["client", "attach", "api_url_of_stack", "Bridge", "JOB_OPERATIONS"]
__version__ = "0.1.0"

# S3 Control's job operations, the routes of the batchops API (/v20180820/jobs...).
JOB_OPERATIONS = (
    "CreateJob",
    "DescribeJob",
    "ListJobs",
    "UpdateJobPriority",
    "UpdateJobStatus",
    "GetJobTagging",
    "PutJobTagging",
    "DeleteJobTagging",
)
SIGNING_NAME = "execute-api"
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$")


def region_of(api_url):
    """The region of an `execute-api` URL's host, else None (a custom domain, localhost)."""
    m = _EXECUTE_API_HOST.search(urlsplit(api_url).hostname or "")
    return m.group(1) if m else None


class Bridge:
    """The handlers that send one client's (or one CLI session's) job operations to a batchops
    API. `api_url` is the URL, or a callable answering it (or None: then the operation is left
    as it was) on the first job operation, for the CLI, whose configuration is read late."""

    def __init__(self, api_url, region=None):
        self._api_url = api_url
        self._region = region

    def api_url(self):
        if callable(self._api_url):
            self._api_url = self._api_url()
        return self._api_url

    def register(self, events):
        """Puts the handlers on an event emitter (a client's `meta.events`, or a session's),
        in place of any earlier bridge's."""
        for op in JOB_OPERATIONS:
            for event, handler in ((f"before-call.s3-control.{op}", self.to_api),
                                   (f"choose-signer.s3-control.{op}", self.signer)):
                events.unregister(event, unique_id=f"batchops-{event}")
                events.register(event, handler, unique_id=f"batchops-{event}")

    def to_api(self, params, context, **kwargs):
        """before-call: the request's URL made from the API's (see the module's docstring)."""
        url = self.api_url()
        if not url:
            return
        params.pop("host_prefix", None)  # what Config(inject_host_prefix=False) does
        prepare_request_dict(params, endpoint_url=url, context=context)
        # In place of the ruleset's (signing name s3, no double encoding of the path): API
        # Gateway's, the region of the API (read by RequestSigner.sign).
        region = self._region or region_of(url) or context.get("client_region")
        context["signing"] = {"signing_name": SIGNING_NAME, **({"region": region} if region else {})}
        context["batchops_api_url"] = url

    def signer(self, context, **kwargs):
        """choose-signer: SigV4 (`v4`) for the requests `to_api` moved."""
        if context.get("batchops_api_url"):
            return "v4"


def attach(client, api_url, region=None):
    """Makes an `s3control` client send its job operations to the batchops API at `api_url`
    (the stack's `ApiUrl`), signed with SigV4 for `execute-api` in `region` (by default the
    region in an `execute-api` host, else the client's). Returns the client."""
    if client.meta.service_model.service_name != "s3control":
        raise ValueError(f"attach takes an s3control client, not {client.meta.service_model.service_name}")
    if not api_url or urlsplit(api_url).scheme not in ("http", "https"):
        raise ValueError(f"api_url must be an http(s) URL, not {api_url!r}")
    Bridge(api_url, region).register(client.meta.events)
    return client


def api_url_of_stack(cloudformation, stack="batchops"):
    """The `ApiUrl` output of a batchops stack (CloudFormation DescribeStacks)."""
    stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o.get("OutputValue") for o in stacks[0].get("Outputs", [])} if stacks else {}
    if not outputs.get("ApiUrl"):
        raise ValueError(f"stack {stack} has no ApiUrl output: is it a batchops stack?")
    return outputs["ApiUrl"]


def client(stack="batchops", session=None, **client_kwargs):
    """An `s3control` client whose job operations go to the API of the batchops stack `stack`
    (its `ApiUrl`, read with CloudFormation DescribeStacks in the client's region).
    `session`: a boto3 Session (default: a new one, with the usual credentials chain);
    `client_kwargs` go to `session.client("s3control", ...)` (`region_name`, `verify`,
    `config`...)."""
    if session is None:
        import boto3

        session = boto3.Session()
    make = getattr(session, "client", None) or session.create_client  # boto3 or botocore
    region = client_kwargs.get("region_name")
    api_url = api_url_of_stack(make("cloudformation", region_name=region), stack)
    config = Config(inject_host_prefix=False)
    if client_kwargs.get("config") is not None:
        config = config.merge(client_kwargs["config"])
    client_kwargs["config"] = config
    return attach(make("s3control", **client_kwargs), api_url)
