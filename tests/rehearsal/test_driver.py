"""The rehearsal's Lambda driver keeps the limits the stack declares where Lambda would: an
invocation still running at its function's Timeout is ended (its function's processes
restarted) and deletes nothing, so its batch comes back, and SQS moves a message received
maxReceiveCount times to the dead-letter queue."""

import json
import time

import lambdas
import stack


class NeverAnswers:
    """A runtime whose function never answers within its Timeout."""

    def __init__(self):
        self.receives, self.restarted = [], []

    def invoke(self, binary, payload, timeout):
        self.receives += [int(r["attributes"]["ApproximateReceiveCount"]) for r in payload["Records"]]
        time.sleep(timeout)
        raise lambdas.FunctionTimeout(f"{binary}: no answer within {timeout} s")

    def restart(self, binary):
        self.restarted.append(binary)


def test_an_invocation_past_its_functions_timeout_ends_and_its_message_comes_back_until_dead_lettered(rehearsal):
    sqs = stack.client("sqs", rehearsal.admin)
    name = f"driver-timeout-{int(time.time() * 1000)}"
    dlq_url = sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1", "RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.send_message(QueueUrl=url, MessageBody="{}")
    # GIVEN a function of a 1 s Timeout that never answers, fed by a queue that dead-letters
    # a message on its third receive
    runtime = NeverAnswers()
    mapping = {"EventSourceArn": arn, "BatchSize": 1, "FunctionResponseTypes": ["ReportBatchItemFailures"]}
    esm = lambdas.EventSourceMapping(runtime, "slow-function", mapping, rehearsal.admin, 1, timeout=1)
    esm.start()
    try:
        dead = []
        for _ in range(40):
            dead = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1).get("Messages", [])
            if dead:
                break
    finally:
        esm.stop()
    # THEN each invocation was ended at the Timeout, its function restarted, nothing deleted:
    # the message came back, and SQS dead-lettered it at maxReceiveCount
    assert runtime.receives[:2] == [1, 2], runtime.receives
    assert esm.timeouts >= 2 and runtime.restarted[:2] == ["slow-function"] * 2
    assert len(dead) == 1 and dead[0]["Body"] == "{}"
