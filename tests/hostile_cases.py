"""Hostile requests of the API, the same for `batchops local` (tests/hostile) and for the
rehearsal's API Gateway in front of the job-intake function (tests/rehearsal/test_hostile.py).

Each case is a request a client could send and the answer it must get: a 4xx with S3
Control's error shape (the XML error document for an XML request, {"Code", "Message"} for the
JSON API), its code, and words of its message; never a 5xx, never a dropped process.
"""
import html
import json
import re
from dataclasses import dataclass, field

ACCOUNT = "123456789012"
NS = "http://awss3control.amazonaws.com/doc/2018-08-20/"
XML = {"x-amz-account-id": ACCOUNT, "Content-Type": "application/xml"}
JSON = {"Content-Type": "application/json"}


@dataclass
class Case:
    name: str
    method: str
    path: str
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    status: int = 400
    code: str = "BadRequestException"
    says: str = ""

    @property
    def xml(self):
        return "xml" in self.headers.get("Content-Type", "") or (
            "x-amz-account-id" in self.headers and "json" not in self.headers.get("Content-Type", ""))


def nested_xml(levels, element="a"):
    return (f'<CreateJobRequest xmlns="{NS}">' + f"<{element}>" * levels + f"</{element}>" * levels
            + "</CreateJobRequest>").encode()


def create_xml(inner):
    return f'<CreateJobRequest xmlns="{NS}">{inner}</CreateJobRequest>'.encode()


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">' for i in range(1, 10))
          + ']><CreateJobRequest xmlns="' + NS + '"><Description>&lol9;</Description></CreateJobRequest>').encode()
XXE = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
       f'<CreateJobRequest xmlns="{NS}"><Description>&e;</Description></CreateJobRequest>').encode()
TOKEN = json.dumps({"pk": "JOB#x", "sk": "JOB", "gsi1pk": "JOB", "gsi1sk": "y"})


def cases():
    jobs = "/v20180820/jobs"
    return [
        # The request of issue 23: 4,000 nested elements (28 KB) aborted the process.
        Case("xml nested 4,000 deep", "POST", jobs, nested_xml(4_000), XML, says="nests deeper than 32 elements"),
        Case("xml nested 100,000 deep", "POST", jobs, nested_xml(100_000), XML, says="nests deeper than 32 elements"),
        Case("xml nested 100,000 deep, empty elements between", "POST", jobs,
             create_xml("<a><b/>" * 50_000), XML, says="nests deeper than 32 elements"),
        Case("xml billion laughs", "POST", jobs, LAUGHS, XML, says="DTD"),
        Case("xml external entity", "POST", jobs, XXE, XML, says="DTD"),
        Case("xml of bytes that are not XML", "POST", jobs, bytes(range(256)) * 4, XML, says="not UTF-8"),
        Case("xml that is not XML", "POST", jobs, b"{\"Priority\": 1}", XML, says="not XML"),
        Case("xml of the wrong root", "POST", jobs, f'<PutJobTaggingRequest xmlns="{NS}"/>'.encode(), XML,
             says="not <CreateJobRequest>"),
        Case("xml with a huge integer", "POST", jobs, create_xml("<Priority>" + "9" * 400 + "</Priority>"), XML,
             says="Priority"),
        Case("xml unclosed", "POST", jobs, create_xml("<Priority>1").replace(b"</CreateJobRequest>", b""), XML,
             says="not XML"),
        Case("xml a 2 MB body", "POST", jobs, create_xml("<Description>" + "x" * (2 << 20) + "</Description>"), XML,
             status=413, code="RequestEntityTooLarge", says="1048576"),
        Case("json nested 100,000 deep", "POST", jobs, b'{"Operation": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", JSON,
             says="nests deeper than 32 objects and arrays"),
        Case("json a number of 400 digits", "POST", jobs, b'{"Priority": 1' + b"0" * 400 + b"}", JSON,
             says="number out of range at line 1"),
        Case("json not UTF-8", "POST", jobs, b'{"Description": "\xff\xfe"}', JSON, says="not valid JSON"),
        Case("json a 2 MB body", "POST", jobs, b'{"Description": "' + b"x" * (2 << 20) + b'"}', JSON,
             status=413, code="RequestEntityTooLarge"),
        # Under the body's 1 MiB but over what a job item holds (DynamoDB's 400 KB): a 500 before.
        Case("json a spec of 300 KB", "POST", jobs, b'{"Description": "' + b"x" * 300_000 + b'"}', JSON,
             status=413, code="RequestEntityTooLarge", says="as stored"),
        Case("json an empty body", "POST", jobs, b"", JSON, says="not valid JSON"),
        Case("a method the route does not take", "PATCH", jobs, b"{}", JSON, status=405, code="MethodNotAllowed",
             says="does not take PATCH"),
        Case("list: negative maxResults", "GET", jobs + "?maxResults=-1", headers=JSON, says="maxResults"),
        Case("list: maxResults of 20 digits", "GET", jobs + "?maxResults=99999999999999999999", headers=JSON,
             says="maxResults"),
        Case("list: a status that is none", "GET", jobs + "?jobStatuses=Bogus", headers=JSON, says="jobStatuses"),
        Case("list: a forged nextToken", "GET", jobs + "?nextToken=" + TOKEN.replace('"', "%22").replace(" ", "%20"),
             headers=JSON, says="nextToken"),
        Case("list: a nextToken of 5,000 characters", "GET", jobs + "?nextToken=" + "A" * 5000, headers=JSON,
             says="nextToken"),
        Case("path traversal in a job id", "GET", jobs + "/..%2F..%2F..%2Fetc%2Fpasswd", headers=JSON, says="JobId"),
        Case("a job id that is not UTF-8", "GET", jobs + "/%FF%FE", headers=JSON, says="JobId"),
        Case("a job id of 5,000 characters", "GET", jobs + "/" + "a" * 5000, headers=JSON, says="JobId"),
        Case("a job id with a NUL", "GET", jobs + "/abc%00def", headers=JSON, says="JobId"),
        Case("path traversal in the XML API", "GET", jobs + "/..%2F..%2Fetc", headers={"x-amz-account-id": ACCOUNT},
             says="JobId"),
        Case("an account id of 11 digits", "GET", jobs, headers={"x-amz-account-id": "12345678901"}, says="AccountId"),
        Case("an account id of 13 digits", "GET", jobs, headers={"x-amz-account-id": "1234567890123"},
             says="AccountId"),
        Case("an account id of letters", "GET", jobs, headers={"x-amz-account-id": "abcdefghijkl"}, says="AccountId"),
        Case("an empty account id", "GET", jobs, headers={"x-amz-account-id": ""}, says="AccountId"),
        Case("an account id of 12 non-ASCII digits", "GET", jobs,
             headers={"x-amz-account-id": "\u0661" * 12}, says="AccountId"),
        Case("an account id with spaces", "GET", jobs, headers={"x-amz-account-id": " 123456789012 x"},
             says="AccountId"),
        Case("an account id given twice", "GET", jobs, headers={"x-amz-account-id": ACCOUNT,
             "X-Amz-Account-Id": "210987654321"}, says="more than once"),
        Case("an XML call without an account", "GET", jobs, headers={"Content-Type": "application/xml"},
             says="x-amz-account-id is required"),
        # The parameters are checked before the job is looked for: job-00001 need not exist.
        Case("a status reason of 10 KB", "POST", jobs + "/job-00001/status?requestedJobStatus=Cancelled&statusUpdateReason="
             + "r" * 10_000, headers=JSON, says="statusUpdateReason: length must be 1-256"),
        Case("a priority of -1", "POST", jobs + "/job-00001/priority?priority=-1", headers=JSON,
             says="priority: must be 0-2147483647"),
        Case("tagging of 10,000 tags", "PUT", jobs + "/job-00001/tagging",
             json.dumps({"Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(10_000)]}).encode(), JSON,
             code="TooManyTagsException", says="at most 50 tags"),
    ]


def check(case, status, headers, body):
    """Asserts the answer `case` must get: status, error shape, code and message."""
    text = body.decode("utf-8", "replace")
    want = case.status if isinstance(case.status, set) else {case.status}
    assert status in want, f"{case.name}: {status} {text[:300]}"
    codes = case.code if isinstance(case.code, set) else {case.code}
    if case.xml:
        assert "xml" in headers.get("content-type", ""), f"{case.name}: {headers} {text[:300]}"
        code = re.search(r"<Code>(.*?)</Code>", text)
        message = re.search(r"<Message>(.*?)</Message>", text, re.S)
        assert code and message, f"{case.name}: not S3 Control's error document: {text[:300]}"
        code, message = code.group(1), html.unescape(message.group(1))
    else:
        doc = json.loads(text)
        code, message = doc["Code"], doc["Message"]
    assert code in codes, f"{case.name}: {code}: {message[:300]}"
    assert case.says in message, f"{case.name}: {message[:300]}"
    return message
