"""Lambda as the stack declares it, on this machine: the five function binaries under a Lambda
Runtime API (`cargo lambda watch --only-lambda-apis`), SQS event source mappings, and an API
Gateway REST proxy that verifies SigV4 signatures.

What AWS does that this driver does not (besides MOTO_GAPS in stack.py):
- one process per concurrent invocation is started up front (2 executors, 1 of the others):
  MaximumConcurrency is honoured up to that number, and there is no scaling, no cold start and
  no freeze between invocations;
- an invocation still running at its function's Timeout is ended by restarting every process
  of that function (Lambda ends that one environment), and its batch comes back after its
  messages' visibility, as on AWS (cargo lambda watch itself gives every invocation the longest
  Timeout of the stack);
- MaximumBatchingWindowInSeconds is honoured, but a batch is never split by payload size;
- the API proxy checks the SigV4 signature against the keys the rehearsal issued, not the
  caller's IAM policy for execute-api:Invoke; it answers on loopback over HTTP (the stack's
  ApiUrl) and over HTTPS with a certificate for localhost that the rehearsal makes, not on
  API Gateway's host;
- logs go to files under the rehearsal's log folder, not CloudWatch.
"""

import base64
import datetime
import ipaddress
import json
import os
import ssl
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stack import REGION, client

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = {
    "JobIntakeFunction": "job-intake",
    "SpecTriggerFunction": "job-intake-s3-trigger",
    "ManifestChunkerFunction": "manifest-chunker",
    "TaskExecutorFunction": "task-executor",
    "ReportFinalizerFunction": "report-finalizer",
    "JobResourceFunction": "job-intake-resource",
}
PROCESSES = {"TaskExecutorFunction": 2}


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


class FunctionTimeout(Exception):
    """An invocation ran past its function's Timeout."""


class Runtime:
    """cargo lambda watch serving the Runtime API and the Invoke API for prebuilt binaries."""

    def __init__(self, port, logs):
        self.port, self.logs = port, logs
        self.url = f"http://127.0.0.1:{port}"
        self.procs = []
        self.watch = None
        # binary -> (env, count, its processes): what a restart starts again.
        self.functions = {}
        self.restarting = threading.Lock()

    def launch(self, timeout):
        """Starts cargo lambda watch; `timeout` (seconds) is every invocation's deadline."""
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", self.port)) != 0, f"port {self.port} is taken (REHEARSAL_LAMBDA_PORT)"
        log = open(os.path.join(self.logs, "cargo-lambda-watch.log"), "w")
        env = dict(os.environ, PATH=os.path.join(ROOT, ".venv", "bin") + ":" + os.environ["PATH"])
        watch = ["cargo", "lambda", "watch", "--only-lambda-apis", "--ignore-changes"]
        watch += ["-A", "127.0.0.1", "-P", str(self.port), "--timeout", str(timeout)]
        self.watch = subprocess.Popen(watch, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.watch.poll() is None, "cargo lambda watch stopped; see cargo-lambda-watch.log"
                time.sleep(0.2)

    def start(self, binary, env, count=1):
        """Starts `count` processes of `binary`, each polling the Runtime API for invocations."""
        given = env
        env = dict(
            env,
            AWS_LAMBDA_RUNTIME_API=f"{self.url}/.rt/{binary}",
            AWS_LAMBDA_FUNCTION_NAME=binary,
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            PATH=os.environ["PATH"],
        )
        env.setdefault("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        procs = []
        for i in range(count):
            log = open(os.path.join(self.logs, f"{binary}-{i}.log"), "a")
            p = subprocess.Popen([os.path.join(target_dir(), "debug", binary)], env=env, stdout=log, stderr=log)
            procs.append(p)
        self.procs.extend(procs)
        self.functions[binary] = (given, count, procs)

    def restart(self, binary):
        """Ends every process of `binary` (an invocation ran past its Timeout) and starts them
        again: their other invocations fail too, and their batches come back, as after a crash."""
        with self.restarting:
            env, count, procs = self.functions[binary]
            for p in procs:
                p.kill()
                p.wait(timeout=10)
                self.procs.remove(p)
            self.start(binary, env, count)

    def invoke(self, binary, payload, timeout=900):
        """The Invoke API (RequestResponse): (status, parsed body); FunctionTimeout when no
        answer came within `timeout` seconds."""
        req = urllib.request.Request(
            f"{self.url}/2015-03-31/functions/{binary}/invocations", data=json.dumps(payload).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except (socket.timeout, TimeoutError) as e:
            raise FunctionTimeout(f"{binary}: no answer within {timeout} s") from e
        except urllib.error.URLError as e:
            if isinstance(e.reason, (socket.timeout, TimeoutError)):
                raise FunctionTimeout(f"{binary}: no answer within {timeout} s") from e
            raise

    def stop(self):
        for p in self.procs:
            p.terminate()
        # cargo-lambda waits for open connections on SIGTERM; its whole group is killed.
        if self.watch:
            os.killpg(self.watch.pid, 9)
        for p in self.procs + [self.watch] * bool(self.watch):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


class EventSourceMapping(threading.Thread):
    """Polls one queue as Lambda's SQS poller does: batches of BatchSize (within the batching
    window), one invocation per batch, at most MaximumConcurrency at once; with
    ReportBatchItemFailures, the records not listed as failed are deleted; failed records stay
    and come back after the queue's visibility timeout (the DLQ after maxReceiveCount is SQS's
    own redrive, at the queue's maxReceiveCount). An invocation still running at the function's
    `timeout` (seconds) ends its function's processes (see Runtime.restart) and its batch comes
    back. The poller acts as the function's role, as Lambda's does."""

    def __init__(self, runtime, binary, mapping, creds, concurrency, timeout=900):
        super().__init__(daemon=True)
        self.runtime, self.binary, self.mapping = runtime, binary, mapping
        self.timeout = timeout
        self.timeouts = 0
        self.sqs = client("sqs", creds)
        arn = mapping["EventSourceArn"]
        account, name = arn.split(":")[4], arn.split(":")[5]
        self.queue_url = self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        self.report_failures = "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", [])
        limit = mapping.get("ScalingConfig", {}).get("MaximumConcurrency", concurrency)
        self.slots = threading.Semaphore(min(limit, concurrency))
        self.stopping = threading.Event()
        self.invocations = 0
        self.errors = []

    def note(self, what):
        """Keeps a poller error, and writes it to REHEARSAL_LOGS/esm-<binary>.log."""
        self.errors.append(what)
        logs = os.environ.get("REHEARSAL_LOGS")
        if logs:
            with open(os.path.join(logs, f"esm-{self.binary}.log"), "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {what}\n")

    def receive(self):
        size = self.mapping.get("BatchSize", 10)
        window = self.mapping.get("MaximumBatchingWindowInSeconds", 0)
        batch, until = [], time.time() + window
        while len(batch) < size and not self.stopping.is_set():
            try:
                out = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=min(10, size - len(batch)),
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            except Exception as e:
                # What was received is delivered, as Lambda's poller does; dropping it here
                # would hide it for the queue's whole visibility timeout (30 minutes).
                self.note(f"receive failed: {e!r}")
                if batch:
                    break
                raise
            batch += out.get("Messages", [])
            if batch and time.time() >= until:
                break
        return batch

    def event(self, messages):
        arn = self.mapping["EventSourceArn"]
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": m.get("MessageAttributes", {}),
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": REGION,
                }
                for m in messages
            ]
        }

    def deliver(self, messages):
        try:
            try:
                status, out = self.runtime.invoke(self.binary, self.event(messages), timeout=self.timeout)
            except FunctionTimeout as e:
                # Lambda ends the invocation: nothing is deleted, the batch comes back.
                self.timeouts += 1
                self.note(f"invocation ran past the function's Timeout ({self.timeout} s): {e}")
                self.runtime.restart(self.binary)
                return
            self.invocations += 1
            if status != 200:
                self.note(f"invocation answered {status}: {out!r:.500}")
                return  # a function error: the whole batch comes back
            failed = set()
            if self.report_failures and isinstance(out, dict):
                failed = {f["itemIdentifier"] for f in out.get("batchItemFailures") or []}
            # One by one: IAM authorizes a batch delete as sqs:DeleteMessage, moto only as
            # sqs:DeleteMessageBatch, which the managed poller policy does not name.
            for m in messages:
                if m["MessageId"] not in failed:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        except Exception as e:  # the batch comes back after the visibility timeout, as on AWS
            self.note(f"delivery failed: {e!r}")
        finally:
            self.slots.release()

    def run(self):
        while not self.stopping.is_set():
            self.slots.acquire()
            try:
                messages = self.receive()
            except Exception:
                messages = []
                time.sleep(0.5)
            if not messages:
                self.slots.release()
                continue
            threading.Thread(target=self.deliver, args=(messages,), daemon=True).start()

    def stop(self):
        self.stopping.set()


class ApiProxy:
    """API Gateway's REST API in front of job-intake: the routes the template declares, SigV4
    verified (403 on a bad signature, as API Gateway answers), AWS_PROXY events of payload
    format 1.0 with the stage and the caller's identity."""

    def __init__(self, runtime, binary, routes, stage, keys, account):
        self.runtime, self.binary, self.routes, self.stage = runtime, binary, routes, stage
        # access key id -> (secret, session token, caller ARN): the credentials the rehearsal issued
        self.keys, self.account = keys, account
        self.api_id = uuid.uuid4().hex[:10]
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                proxy.handle(self)

            def do_POST(self):
                proxy.handle(self)

            def do_PUT(self):
                proxy.handle(self)

            def do_DELETE(self):
                proxy.handle(self)

            def do_PATCH(self):
                proxy.handle(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/{stage}"
        self.tls = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.tls_url = f"https://localhost:{self.tls.server_port}/{stage}"
        self.ca_file = os.path.join(runtime.logs, "api-ca.pem")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*self_signed_localhost(self.ca_file))
        self.tls.socket = context.wrap_socket(self.tls.socket, server_side=True)
        for server in (self.server, self.tls):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def verify(self, h, body):
        """The caller's ARN if the request's SigV4 signature is right, else None."""
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return None
        fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
        key_id, date, region, service, _ = fields["Credential"].split("/")
        if key_id not in self.keys or region != REGION or service != "execute-api":
            return None
        secret, token, arn = self.keys[key_id]
        signed = fields["SignedHeaders"].split(";")
        host = h.headers.get("Host")
        url = f"http://{host}{h.path}"
        req = AWSRequest(method=h.command, url=url, data=body, headers={k: h.headers[k] for k in signed if k in h.headers})
        req.context["timestamp"] = h.headers.get("X-Amz-Date", "")
        signer = SigV4Auth(Credentials(key_id, secret, token), "execute-api", REGION)
        canonical = signer.canonical_request(req)
        expected = signer.signature(signer.string_to_sign(req, canonical), req)
        return arn if expected == fields.get("Signature") else None

    def route(self, path, method):
        parts = path.strip("/").split("/")
        for resource, methods in self.routes.items():
            rparts = resource.strip("/").split("/")
            if len(rparts) != len(parts) or method.lower() not in methods:
                continue
            params = {}
            for r, p in zip(rparts, parts):
                if r.startswith("{") and r.endswith("}"):
                    params[r[1:-1]] = urllib.parse.unquote(p)
                elif r != p:
                    break
            else:
                return resource, params
        return None, None

    def reply(self, h, status, body, headers=None):
        data = body.encode() if isinstance(body, str) else body
        h.send_response(status)
        for k, v in (headers or {"Content-Type": "application/json"}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def handle(self, h):
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        url = urllib.parse.urlsplit(h.path)
        prefix = f"/{self.stage}"
        resource, params = (None, None)
        if url.path.startswith(prefix + "/"):
            resource, params = self.route(url.path[len(prefix) :], h.command)
        if resource is None:
            return self.reply(h, 403, json.dumps({"message": "Missing Authentication Token"}))
        caller = self.verify(h, body)
        if caller is None:
            msg = "The request signature we calculated does not match the signature you provided."
            return self.reply(h, 403, json.dumps({"message": msg}))
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        path = url.path[len(prefix) :]
        now = time.time()
        event = {
            "resource": resource,
            "path": path,
            "httpMethod": h.command,
            "headers": {k: v for k, v in h.headers.items()},
            "multiValueHeaders": {k: h.headers.get_all(k) for k in h.headers.keys()},
            "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": self.account,
                "apiId": self.api_id,
                "resourceId": uuid.uuid4().hex[:6],
                "resourcePath": resource,
                "httpMethod": h.command,
                "path": url.path,
                "stage": self.stage,
                "protocol": "HTTP/1.1",
                "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": int(now * 1000),
                "identity": {
                    "userArn": caller,
                    "caller": caller.split("/")[-1],
                    "accountId": caller.split(":")[4],
                    "accessKey": h.headers["Authorization"].split("Credential=")[1].split("/")[0],
                    "sourceIp": "127.0.0.1",
                    "userAgent": h.headers.get("User-Agent"),
                },
            },
            # A body that is not UTF-8 arrives base64-encoded, as API Gateway hands binary on.
            "body": event_body(body),
            "isBase64Encoded": event_body(body) is not None and utf8(body) is None,
        }
        status, out = self.runtime.invoke(self.binary, event)
        if status != 200 or not isinstance(out, dict):
            return self.reply(h, 502, json.dumps({"message": "Internal server error"}))
        headers = dict(out.get("headers") or {})
        for k, vs in (out.get("multiValueHeaders") or {}).items():
            headers[k] = vs[-1]
        headers.pop("content-length", None)
        self.reply(h, out.get("statusCode", 200), out.get("body") or "", headers)

    def stop(self):
        self.server.shutdown()
        self.tls.shutdown()


def utf8(body):
    """`body` as text; None when it is not UTF-8."""
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None


def event_body(body):
    """The event's `body`: None when empty, the text, or base64 when it is not UTF-8."""
    if not body:
        return None
    text = utf8(body)
    return text if text is not None else base64.b64encode(body).decode()


def self_signed_localhost(ca_path):
    """A certificate authority, written as PEM to `ca_path` (the file a client trusts), and a
    certificate it signed for localhost and 127.0.0.1; returns the paths of that certificate
    and its key (beside `ca_path`)."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, key, issuer, issuer_key, ca):
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("batchops rehearsal CA", ca_key, "batchops rehearsal CA", ca_key, True)
    cert = certificate("localhost", key, "batchops rehearsal CA", ca_key, False)
    pem = serialization.Encoding.PEM
    paths = (ca_path + ".localhost.pem", ca_path + ".localhost.key")
    for path, data in (
        (ca_path, ca.public_bytes(pem)),
        (paths[0], cert.public_bytes(pem)),
        (paths[1], key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
    ):
        with open(path, "wb") as f:
            f.write(data)
    return paths
