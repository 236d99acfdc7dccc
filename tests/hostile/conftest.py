"""`batchops local` on moto for the hostile-request suite (scripts/hostile-test.sh starts moto)."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from local_api import batchops_local  # noqa: E402

LOGS = os.path.join(ROOT, ".local", "hostile")


@pytest.fixture(scope="session")
def local():
    """(host, port, process) of a `batchops local` every test of the suite shares: what one
    test does to it, the next still finds it answering."""
    with batchops_local("hostile", LOGS, with_process=True) as (base, proc):
        host, port = base.removeprefix("http://").split(":")
        yield host, int(port), proc
