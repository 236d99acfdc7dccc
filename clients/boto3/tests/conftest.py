"""The requests boto3 would send, captured before they leave (botocore's `before-send`, here in
the tests only) and answered with canned responses: no server, no network."""

import os
import sys

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, AWSResponse
from botocore.credentials import Credentials

# The package as it is in this tree (not a copy installed earlier).
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PACKAGE)

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ACCOUNT = "123456789012"
JOB_ID = "3b6c0a1e-5d8f-4c2a-9e7b-1f2a3b4c5d6e"
CREATE_JOB_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<CreateJobResult xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">'
    f"<JobId>{JOB_ID}</JobId></CreateJobResult>"
).encode()


class Raw:
    """What AWSResponse reads a body from."""

    def __init__(self, body):
        self.body = body

    def stream(self, **kwargs):
        yield self.body


class Recorder:
    """Registered on `before-send`: keeps each prepared request and answers `body`."""

    def __init__(self, body=CREATE_JOB_XML, status=200):
        self.requests, self.body, self.status = [], body, status

    def __call__(self, request, **kwargs):
        self.requests.append(request)
        return AWSResponse(request.url, self.status, {"content-type": "application/xml"}, Raw(self.body))

    @property
    def last(self):
        return self.requests[-1]


def auth_fields(request):
    """The Authorization header's Credential, SignedHeaders and Signature."""
    auth = request.headers["Authorization"]
    auth = auth.decode() if isinstance(auth, bytes) else auth
    assert auth.startswith("AWS4-HMAC-SHA256 "), auth
    return dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))


def header(request, name):
    v = request.headers.get(name)
    return v.decode() if isinstance(v, bytes) else v


def expected_signature(request, service, region, key=KEY, secret=SECRET):
    """The signature botocore's SigV4Auth computes for the request as sent (what API Gateway
    checks): its method, URL, body and the headers it says it signed."""
    fields = auth_fields(request)
    signed = fields["SignedHeaders"].split(";")
    headers = {k: header(request, k) for k in signed if k != "host" and header(request, k) is not None}
    body = request.body or b""
    if hasattr(body, "read"):
        body = body.read()
    req = AWSRequest(method=request.method, url=request.url, data=body, headers=headers)
    req.context["timestamp"] = header(request, "X-Amz-Date")
    signer = SigV4Auth(Credentials(key, secret), service, region)
    return signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)


@pytest.fixture
def recorder():
    return Recorder()
