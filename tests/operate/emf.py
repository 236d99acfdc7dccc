"""CloudWatch Embedded Metric Format (EMF) documents checked against the specification: the JSON
Schema batchops keeps (shared/batchops-core/src/metrics/emf.schema.json, which the Rust unit
tests load too), and by hand what a JSON Schema cannot say (its "description" lists them): every
dimension key names a root member holding a string, every metric name a root member holding a
number or at most 100 numbers. The rehearsal (tests/rehearsal/test_operate.py) reads the
functions' output with it."""

import json
import os
import re

import jsonschema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_PATH = os.path.join(ROOT, "shared", "batchops-core", "src", "metrics", "emf.schema.json")
# Lambda may put its own fields before the document ("timestamp request-id ..."): the
# document is the JSON object from the first `{"_aws"` on.
EMF_START = re.compile(r'\{\s*"_aws"\s*:')


def schema():
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def validator():
    s = schema()
    jsonschema.Draft7Validator.check_schema(s)
    return jsonschema.Draft7Validator(s)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def problems(doc, v=None):
    """Every way `doc` (a parsed document) breaks the specification, as sentences; [] when none."""
    v = v or validator()
    found = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in v.iter_errors(doc)]
    if found or not isinstance(doc, dict):
        return found
    for d, directive in enumerate(doc["_aws"]["CloudWatchMetrics"]):
        for s, dimension_set in enumerate(directive["Dimensions"]):
            if len(set(dimension_set)) != len(dimension_set):
                found.append(f"directive {d}, dimension set {s}: a key twice: {dimension_set}")
            for key in dimension_set:
                value = doc.get(key)
                if key == "_aws" or not isinstance(value, str):
                    found.append(f"dimension {key!r}: the root's member is {value!r}, not a string")
                elif not 1 <= len(value) <= 1024 or not value.isascii() or any(ord(c) < 32 for c in value):
                    found.append(f"dimension {key!r}: {value!r} is not 1-1024 printable ASCII characters")
        for metric in directive["Metrics"]:
            name = metric["Name"]
            value = doc.get(name)
            if name == "_aws":
                found.append("metric '_aws': names the metadata")
            elif isinstance(value, list):
                if len(value) > 100 or not all(is_number(x) for x in value):
                    found.append(f"metric {name!r}: an array of {len(value)} values, not at most 100 numbers")
            elif not is_number(value):
                found.append(f"metric {name!r}: the root's member is {value!r}, not a number")
    return found


def documents(text):
    """The EMF documents in a function's output (one a line, maybe after Lambda's own fields),
    parsed; a line that starts one but does not parse raises (the spec wants a whole JSON object)."""
    docs = []
    for line in text.splitlines():
        m = EMF_START.search(line)
        if not m:
            continue
        docs.append(json.loads(line[m.start():]))
    return docs


def values(doc, name):
    """A metric's values in a document, as a list (a single number is one value)."""
    v = doc.get(name)
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def metric_names(doc):
    return {m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}


def total(docs, name, job_id=None):
    """The sum of a metric over the documents (of one job, when given)."""
    return sum(
        sum(values(d, name))
        for d in docs
        if name in metric_names(d) and (job_id is None or d.get("job_id") == job_id)
    )
