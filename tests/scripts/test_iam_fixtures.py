"""The IAM answers tests/e2e/roles.rs serves to `IamPassRole` (moto has no SimulatePrincipalPolicy
and the rehearsal turns the check off, so these hand-written answers are all that test the
adapter's reading of IAM): each must be what AWS could send, per botocore's IAM model.

Parsing alone proves little: botocore, like the Rust SDK, skips elements its shape does not name,
so a misspelt element parses as if it were absent. The fixture is therefore also walked along
the shape, and any element the shape does not define fails the test."""

import datetime
import os
import xml.etree.ElementTree as ET

import botocore.parsers
import botocore.session
import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "e2e", "fixtures", "iam")
IAM = botocore.session.get_session().get_service_model("iam")

# What tests/e2e/roles.rs has the adapter read from each answer: the caller's role ARN (with the
# path the session ARN leaves out), and one decision on iam:PassRole of the job's role.
CALLER_ROLE = "arn:aws:iam::123456789012:role/ops/ops-admin"
JOB_ROLE = "arn:aws:iam::123456789012:role/job"


def simulated(decision):
    return {
        "IsTruncated": False,
        "EvaluationResults": [
            {"EvalActionName": "iam:PassRole", "EvalResourceName": JOB_ROLE, "EvalDecision": decision}
        ],
    }


EXPECTED = {
    "get-role-ops-admin.xml": (
        "GetRole",
        {
            "Role": {
                "Path": "/ops/",
                "RoleName": "ops-admin",
                "RoleId": "AROA1",
                "Arn": CALLER_ROLE,
                "CreateDate": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
            }
        },
    ),
    "simulate-principal-policy-allowed.xml": ("SimulatePrincipalPolicy", simulated("allowed")),
    "simulate-principal-policy-implicit-deny.xml": ("SimulatePrincipalPolicy", simulated("implicitDeny")),
    "simulate-principal-policy-explicit-deny.xml": ("SimulatePrincipalPolicy", simulated("explicitDeny")),
}


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def local(tag):
    return tag.rpartition("}")[2]


def children(node):
    return [child for child in node if isinstance(child.tag, str)]  # not comments


def shape_errors(node, shape, path):
    """Every way `node` strays from `shape`: elements it does not define, required members
    missing, a member given twice, text no value of its type reads as."""
    path = f"{path}/{local(node.tag)}"
    if shape.type_name == "structure":
        names = {m.serialization.get("name", name): m for name, m in shape.members.items()}
        errors, seen = [], set()
        for child in children(node):
            tag = local(child.tag)
            if tag not in names:
                errors.append(f"{path}/{tag}: not a member of {shape.name} ({', '.join(names)})")
            elif tag in seen:
                errors.append(f"{path}/{tag}: given twice")
            else:
                seen.add(tag)
                errors += shape_errors(child, names[tag], path)
        required = {shape.members[name].serialization.get("name", name) for name in shape.required_members}
        errors += [f"{path}: {name}, required by {shape.name}, is missing" for name in sorted(required - seen)]
        return errors
    if shape.type_name == "list":
        # IAM's lists wrap each item in <member>; a flattened list would need another walk.
        assert not shape.serialization.get("flattened"), f"{path}: flattened lists are not walked"
        item = shape.member.serialization.get("name", "member")
        errors = []
        for child in children(node):
            if local(child.tag) != item:
                errors.append(f"{path}/{local(child.tag)}: a {shape.name} holds <{item}> elements")
            else:
                errors += shape_errors(child, shape.member, path)
        return errors
    if shape.type_name == "map":
        key, value = (shape.key.serialization.get("name", "key"), shape.value.serialization.get("name", "value"))
        errors = []
        for entry in children(node):
            if local(entry.tag) != "entry":
                errors.append(f"{path}/{local(entry.tag)}: a {shape.name} holds <entry> elements")
                continue
            for part in children(entry):
                part_shape = {key: shape.key, value: shape.value}.get(local(part.tag))
                if part_shape is None:
                    errors.append(f"{path}/entry/{local(part.tag)}: an entry holds <{key}> and <{value}>")
                else:
                    errors += shape_errors(part, part_shape, f"{path}/entry")
        return errors
    if children(node):
        return [f"{path}: a {shape.type_name} ({shape.name}) has elements {[local(c.tag) for c in children(node)]}"]
    return scalar_errors((node.text or "").strip(), shape, path)


def scalar_errors(text, shape, path):
    # botocore reads any text but "true" as false, and its enums are not checked when parsing.
    if shape.type_name == "boolean" and text not in ("true", "false"):
        return [f"{path}: {text!r} is not a boolean"]
    if shape.type_name in ("integer", "long"):
        try:
            int(text)
        except ValueError:
            return [f"{path}: {text!r} is not an integer"]
    if shape.type_name == "timestamp":
        try:
            botocore.parsers.DEFAULT_TIMESTAMP_PARSER(text)
        except ValueError:
            return [f"{path}: {text!r} is not a timestamp"]
    if shape.type_name == "string" and shape.enum and text not in shape.enum:
        return [f"{path}: {text!r} is not one of {shape.name}'s {shape.enum}"]
    return []


def response_errors(root, operation):
    """The envelope of a query-protocol answer: <{Operation}Response> in the service's namespace,
    holding the result wrapper and ResponseMetadata; then the result, walked along the shape."""
    output = operation.output_shape
    wrapper = output.serialization["resultWrapper"]
    namespace = IAM.metadata["xmlNamespace"]
    errors = []
    if root.tag != f"{{{namespace}}}{operation.name}Response":
        errors.append(f"root is {root.tag}, not {{{namespace}}}{operation.name}Response")
    tags = [local(child.tag) for child in children(root)]
    if sorted(tags) != sorted([wrapper, "ResponseMetadata"]):
        errors.append(f"/{local(root.tag)} holds {tags}, not {wrapper} and ResponseMetadata")
    for child in children(root):
        if local(child.tag) == wrapper:
            errors += shape_errors(child, output, f"/{local(root.tag)}")
        elif local(child.tag) == "ResponseMetadata":
            unknown = [local(c.tag) for c in children(child) if local(c.tag) != "RequestId"]
            if unknown:
                errors.append(f"/{local(root.tag)}/ResponseMetadata holds {unknown}, not only RequestId")
    return errors


def test_every_fixture_is_checked():
    # A fixture added to the Rust test without an expectation here would go unchecked.
    assert sorted(os.listdir(FIXTURES)) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_fixture_holds_only_what_iams_model_defines(name):
    operation = IAM.operation_model(EXPECTED[name][0])
    errors = response_errors(ET.fromstring(fixture(name)), operation)
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_botocore_reads_the_fixture_as_the_rust_test_expects_the_adapter_to(name):
    operation_name, expected = EXPECTED[name]
    output = IAM.operation_model(operation_name).output_shape
    response = {"body": fixture(name), "headers": {}, "status_code": 200}
    parsed = botocore.parsers.QueryParser().parse(response, output)
    assert parsed.pop("ResponseMetadata")["RequestId"]
    assert parsed == expected
