"""`batchops local` for the Python tests (the console's and the SDKs'): started on a free port
with a resource prefix of its own against the moto that AWS_ENDPOINT_URL names, stopped after."""
import contextlib
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def batchops_local(name, log_dir, args=(), env=None, with_process=False):
    """Yields the API's base URL (and the process, with_process); the server's output goes to
    <log_dir>/batchops-local.log."""
    binary = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug", "batchops")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.makedirs(log_dir, exist_ok=True)
    log = open(os.path.join(log_dir, "batchops-local.log"), "w")
    env = dict(os.environ, RUST_LOG="warn", **(env or {}))
    proc = subprocess.Popen([binary, "local", "--listen", f"127.0.0.1:{port}", "--prefix", f"{name}{uuid.uuid4().hex[:8]}",
                             *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{base}/v20180820/jobs", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, open(log.name).read()
                time.sleep(0.2)
        yield (base, proc) if with_process else base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def s3_client():
    """boto3's S3 client on the emulator AWS_ENDPOINT_URL names."""
    import boto3
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")


def make_buckets(s3, tag, keys, body=lambda key: b"x"):
    """Buckets `src`, `dst`, `man` and `rep` (named `<tag>-<role>-<run>`) with `keys` in `src`,
    and `manifest(name, rows)`, which writes a CSV manifest of `rows` to `man` and answers
    CreateJob's `Manifest` member for it."""
    run = uuid.uuid4().hex[:8]
    b = {n: f"{tag}-{n}-{run}" for n in ("src", "dst", "man", "rep")}
    for name in b.values():
        s3.create_bucket(Bucket=name)
    for k in keys:
        s3.put_object(Bucket=b["src"], Key=k, Body=body(k))

    def manifest(name, rows):
        text = "".join(f"{b['src']},{urllib.parse.quote_plus(k, safe='/')}\n" for k in rows)
        etag = s3.put_object(Bucket=b["man"], Key=name, Body=text.encode())["ETag"]
        return {"Spec": {"Format": "S3BatchOperations_CSV_20180820", "Fields": ["Bucket", "Key"]},
                "Location": {"ObjectArn": f"arn:aws:s3:::{b['man']}/{name}", "ETag": etag}}

    return b, manifest
