"""The hostile requests of tests/hostile_cases.py, signed, through the rehearsal's API Gateway
to the job-intake function as deployed: each gets the same 4xx as from `batchops local`, and
the function answers the next request. (The transport's bounds, heads, slow clients and
connections, are API Gateway's in AWS; tests/hostile checks batchops local's own.)"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hostile_cases import cases, check  # noqa: E402


def signable(case):
    """Why a case cannot be sent signed, or None: botocore signs header values as UTF-8 and
    the proxy reads them as Latin-1, and it keeps one of two headers differing in case."""
    values = list(case.headers.values())
    if any(not v.isascii() for v in values):
        return "a header that is not ASCII cannot be signed alike on both ends"
    if len({k.lower() for k in case.headers}) < len(case.headers):
        return "botocore keeps one of two headers of the same name"
    return None


CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_hostile_request_through_api_gateway_gets_the_same_4xx(rehearsal, case):
    if why := signable(case):
        pytest.skip(why)
    answer = rehearsal.call_raw(case.method, case.path, case.body, case.headers)
    assert answer is not None, f"{case.name}: the connection closed without an answer"
    if case.method not in ("GET", "POST", "PUT", "DELETE"):
        # API Gateway answers a method the API does not declare itself, before any function.
        assert answer[0] == 403 and b"Missing Authentication Token" in answer[2], answer
    else:
        check(case, *answer)
    status, out = rehearsal.call("GET", "/v20180820/jobs?maxResults=1")
    assert status == 200, out
