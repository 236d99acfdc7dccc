"""Writes functions/job-intake/model/s3control-jobs.json: the job operations of the S3 Control
service model that ships inside botocore, and every shape they reach, without documentation.

The API's REST-XML protocol (functions/job-intake/src/xml) is driven by this file: element
names, list and map layouts, and member types all come from it. Run it again after a botocore
upgrade to take S3's new members (`make s3control-model`), then `cargo test -p job-intake`:
its model test names every member batchops does not handle yet.
"""
import gzip
import json
import os
import sys

import botocore

OPERATIONS = ["CreateJob", "DescribeJob", "ListJobs", "UpdateJobStatus", "UpdateJobPriority",
              "GetJobTagging", "PutJobTagging", "DeleteJobTagging"]
SHAPE_KEYS = ("type", "members", "member", "key", "value", "enum", "required", "union", "exception",
              "flattened", "locationName", "xmlNamespace")
MEMBER_KEYS = ("shape", "location", "locationName", "xmlNamespace", "flattened")


def load_model():
    data = os.path.join(os.path.dirname(botocore.__file__), "data", "s3control")
    version = sorted(os.listdir(data))[-1]
    with gzip.open(os.path.join(data, version, "service-2.json.gz")) as f:
        return json.load(f)


def subset(model):
    shapes, todo = {}, []
    ops = {}
    for name in OPERATIONS:
        op = model["operations"][name]
        ops[name] = {k: op[k] for k in ("name", "http", "input", "output", "errors") if k in op}
        todo += [op[k]["shape"] for k in ("input", "output") if k in op]
        todo += [e["shape"] for e in op.get("errors", [])]
    while todo:
        name = todo.pop()
        if name in shapes:
            continue
        shape = model["shapes"][name]
        kept = {k: shape[k] for k in SHAPE_KEYS if k in shape}
        if "members" in kept:
            kept["members"] = {m: {k: v[k] for k in MEMBER_KEYS if k in v} for m, v in shape["members"].items()}
            todo += [m["shape"] for m in kept["members"].values()]
        for part in ("member", "key", "value"):
            if part in kept:
                kept[part] = {k: kept[part][k] for k in MEMBER_KEYS if k in kept[part]}
                todo.append(kept[part]["shape"])
        shapes[name] = kept
    return {"metadata": {k: model["metadata"][k] for k in ("apiVersion", "protocol", "serviceId", "uid")},
            "botocoreVersion": botocore.__version__,
            "operations": ops,
            "shapes": dict(sorted(shapes.items()))}


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "functions/job-intake/model/s3control-jobs.json"
    with open(out, "w") as f:
        json.dump(subset(load_model()), f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"wrote {out}")
