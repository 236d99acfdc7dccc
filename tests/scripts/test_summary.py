"""`make test`'s last line (scripts/summary.sh): the counts of every shape of suite log, so the
line never says 0 failed while a suite failed, errored, ran nothing or never started."""

import os
import subprocess

import pytest

SUMMARY = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "summary.sh")


def bash(script, tmp_path, logs=None):
    for name, text in (logs or {}).items():
        (tmp_path / name).write_text(text)
    run = subprocess.run(
        ["bash", "-c", f"set -uo pipefail; source {SUMMARY}; cd {tmp_path}; {script}"],
        capture_output=True, text=True,
    )
    assert not run.stderr, run.stderr  # e.g. bash's "syntax error in expression"
    return run


def counts(kind, log, status, tmp_path):
    logs = {} if log is None else {"suite.log": log}
    return bash(f"count_{kind} suite.log {status}", tmp_path, logs).stdout.strip()


@pytest.mark.parametrize(
    "log, status, want",
    [
        ("....\n32 passed in 39.12s\n", 0, "32 0"),
        ("F...\nFAILED test_x.py::test_a\n1 failed, 31 passed in 40.00s\n", 1, "31 1"),
        ("EEE\n3 errors in 1.00s\n", 1, "0 3"),
        ("FF\n2 failed in 1.00s\n", 1, "0 2"),
        ("FE.\n1 failed, 5 passed, 1 error in 3.10s\n", 1, "5 2"),
        ("======= 5 passed, 2 skipped, 1 warning in 1.20s =======\n", 0, "5 0"),
        # collection failed: pytest stops before running anything
        ("ImportError\nInterrupted: 1 error during collection\n1 error in 0.30s\n", 2, "0 1"),
        ("no tests ran in 0.01s\n", 5, "0 1"),
        # the script died before pytest (a build error): nothing counted, one failure
        ("error[E0425]: cannot find value `x`\nerror: could not compile `batchops`\n", 1, "0 1"),
        ("", 1, "0 1"),
        (None, 1, "0 1"),
        # pytest passed, the script failed after it (a fixture's teardown, a service not stopped)
        ("5 passed in 1.00s\n", 1, "5 1"),
        # a test's own output mentioning "passed ... in 2s" is not the closing line
        ("step passed in 2s\n7 passed in 9.00s\n", 0, "7 0"),
    ],
)
def test_pytest_logs_of_every_shape_are_counted(tmp_path, log, status, want):
    assert counts("pytest", log, status, tmp_path) == want


@pytest.mark.parametrize(
    "log, status, want",
    [
        ("test result: ok. 12 passed; 0 failed; 0 ignored\ntest result: ok. 3 passed; 0 failed;\n", 0, "15 0"),
        ("test result: ok. 12 passed; 0 failed;\ntest result: FAILED. 4 passed; 2 failed;\n", 101, "16 2"),
        ("error: could not compile `batchops-core`\n", 101, "0 1"),
        (None, 101, "0 1"),
        # a test binary that crashed (SIGSEGV, abort) prints no result line of its own
        ("test result: ok. 12 passed; 0 failed;\nerror: test failed, to rerun pass `--test e2e`\n", 101, "12 1"),
    ],
)
def test_cargo_logs_of_every_shape_are_counted(tmp_path, log, status, want):
    assert counts("cargo", log, status, tmp_path) == want


NODE_CLOSING = "# tests {t}\n# suites 2\n# pass {p}\n# fail {f}\n# cancelled {c}\n# skipped 0\n# todo 0\n# duration_ms 812.5\n"


def node_run(passed, failed=0, cancelled=0):
    return "TAP version 13\nok 1 - BatchOps\n1..2\n" + NODE_CLOSING.format(
        t=passed + failed + cancelled, p=passed, f=failed, c=cancelled
    )


@pytest.mark.parametrize(
    "log, status, want",
    [
        (node_run(18), 0, "18 0"),
        # scripts/cdk-test.sh runs node --test twice (the constructs, then the synthesized app)
        (node_run(18) + "Successfully synthesized to .local/cdk.out\n" + node_run(4), 0, "22 0"),
        (node_run(16, failed=2), 1, "16 2"),
        # a test file that died, or a test that timed out, is cancelled
        (node_run(3, cancelled=1), 1, "3 1"),
        # the spec reporter (a terminal's default)
        ("ℹ tests 5\nℹ suites 0\nℹ pass 5\nℹ fail 0\nℹ cancelled 0\nℹ duration_ms 20.1\n", 0, "5 0"),
        # npm ci or the TypeScript build failed: no test ran
        ("npm error code ENOTFOUND\n", 1, "0 1"),
        ("src/batchops.ts(12,5): error TS2322: Type 'string' is not assignable to type 'number'.\n", 2, "0 1"),
        ("", 1, "0 1"),
        (None, 1, "0 1"),
        # the tests passed, then cdk synth failed
        (node_run(18) + "cdk-test: cdk synth of the example app failed\n", 1, "18 1"),
        # a test's own output is a TAP comment too; only the closing lines count
        ("# Subtest: x\n# pass 99\n# fail 7\nok 1 - x\n" + node_run(1), 0, "1 0"),
    ],
)
def test_node_logs_of_every_shape_are_counted(tmp_path, log, status, want):
    assert counts("node", log, status, tmp_path) == want


def test_the_line_names_what_failed_and_fails_with_it(tmp_path):
    run = bash(
        'add "cargo test" "10 0"; add "cargo fmt --check" "$(count_check 1)"; add rehearse "30 2"; summary',
        tmp_path,
    )
    assert run.stdout.splitlines() == ["failed: cargo fmt --check, rehearse", "tests: 40 passed, 3 failed"]
    assert run.returncode == 1


def test_the_line_of_a_clean_run(tmp_path):
    run = bash('add "cargo test" "10 0"; add "cargo clippy" "$(count_check 0)"; add sdk-test "7 0"; summary', tmp_path)
    assert run.stdout.splitlines() == ["tests: 17 passed, 0 failed"]
    assert run.returncode == 0
