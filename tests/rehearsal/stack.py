"""The SAM template, deployed into moto: infra/template.yaml is the one source of the wiring.

The template is transformed offline (aws-sam-translator), adapted where moto falls short
(each adaptation is listed in `MOTO_GAPS`), and created with CloudFormation CreateStack. What
the functions get (environment, timeout, memory, role, event source mappings, queues) is then
read back from the stack's resources, never from a second copy of the template.
"""

import ast
import io
import json
import os
import re
import zipfile

import boto3
from cfnlint.decode import decode_str
from samtranslator.translator.transform import transform

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "..", "infra", "template.yaml")
REGION = "us-east-1"
os.environ.setdefault("AWS_REGION", REGION)
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
CODE_BUCKET = "rehearsal-code"

# What AWS does with this template that the rehearsal does not, and what it does instead.
MOTO_GAPS = [
    "aws-sam-translator needs an S3 CodeUri: CodeUri '..' becomes s3://rehearsal-code/bootstrap.zip "
    "(a placeholder: the functions run as this machine's binaries under a Lambda Runtime API)",
    "moto cannot deploy a RestApi without methods: the RestApi, its Deployment, Stage and Lambda "
    "permissions are dropped and the driver's API proxy serves the routes the template declares",
    "AWS::SQS::QueuePolicy is not supported by moto: dropped (S3 notifications are not checked "
    "against it)",
    "bucket NotificationConfiguration in a template is ignored by moto: set with the S3 API afterwards",
    "roles created by moto's CloudFormation store inline policies in a form that breaks every call "
    "made with their credentials, and lack their ManagedPolicyArns: each policy is put again as JSON "
    "and the managed policies attached (moto started with MOTO_IAM_LOAD_MANAGED_POLICIES)",
    "moto answers AssumeRole of a role trusting a Service principal with 500: the function roles "
    "trust the rehearsal's admin user instead, so the driver can assume them as Lambda would",
    "moto matches a trust policy's role principal only against the exact caller ARN, not the role's "
    "sessions: roles that trust a function role also trust its session (the driver names it)",
    "moto evaluates DynamoDB actions against Resource '*' only, and a transaction as the action "
    "dynamodb:TransactWriteItems (AWS checks the PutItem/UpdateItem inside it): DynamoDB statements "
    "are granted on '*', with TransactWriteItems beside PutItem (their actions still have to be "
    "right; their resources are checked by test_template.py)",
    "moto's CloudFormation does not create AWS::Scheduler resources (DescribeStackResources then "
    "answers entries without ids): the schedule group and the example schedule are dropped "
    "(test_template.py checks them; local firing is tested against moto's Scheduler API in Rust)",
    "moto has no iam:SimulatePrincipalPolicy: job-intake runs with BATCHOPS_CHECK_PASS_ROLE=false "
    "(the check is tested against its port in Rust)",
    "moto 5.2.6 authorizes an S3 request by its operation name (s3:HeadObject, s3:ListObjectsV2, "
    "s3:CreateMultipartUpload...), not by the IAM action AWS checks (s3:GetObject, s3:ListBucket, "
    "s3:PutObject...; 5.2.5 mapped them): every statement granting an S3 action also grants the "
    "operations AWS authorizes with it (S3_OPERATIONS_OF), on the same resources",
    "moto checks events:PutEvents against Resource '*' (AWS: the event bus's ARN): events statements "
    "are granted on '*' (their actions still have to be right; test_template.py checks the bus)",
    "moto's CloudFormation does not create AWS::CloudWatch::Alarm (DescribeStackResources then answers "
    "entries without ids) nor AWS::SNS::Subscription: both are dropped from the stack and made after it "
    "from the template's own properties (PutMetricAlarm; Subscribe when its Condition holds), their "
    "intrinsic functions resolved against the stack (`after_stack`); the alarms never fire (moto "
    "evaluates no alarm) and SNS sends no email",
    "moto sends every event put on a bus to the targets of a rule that has a ScheduleExpression and "
    "no EventPattern (an empty pattern matches all; its Input is ignored), and never fires the "
    "schedule: DispatchSchedule keeps no target (else every job status event is a control message "
    "the chunker cannot read, dead-lettered; `batchops status --stack` showed 40 of them per run)",
    "moto's Lambda keeps no LoggingConfig and writes no logs: the log groups are created with their "
    "retention, but nothing reaches them (test_template.py checks each function names its group)",
    "moto cannot invoke a function for a custom resource (it needs Docker), and with IAM enforcement "
    "on it answers a presigned URL with 500 (it reads only the Authorization header): the rehearsal "
    "sends CloudFormation's request documents to the custom resource function itself, with "
    "ResponseURLs presigned by a second moto server without enforcement, in the part of "
    "CloudFormation's own response bucket (test_custom_resource.py)",
]

# Resource types moto's CloudFormation does not create: made by `after_stack` instead.
AFTER_STACK = ("AWS::CloudWatch::Alarm", "AWS::SNS::Subscription")

# The S3 operations that AWS authorizes with each IAM action the template grants
# (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html), for
# moto >= 5.2.6, which checks the operation's name instead (see MOTO_GAPS).
S3_OPERATIONS_OF = {
    "s3:GetObject": ["s3:HeadObject", "s3:CopyObject", "s3:UploadPartCopy"],
    "s3:GetObjectVersion": ["s3:HeadObject", "s3:CopyObject", "s3:UploadPartCopy"],
    "s3:PutObject": ["s3:CopyObject", "s3:CreateMultipartUpload", "s3:UploadPart", "s3:UploadPartCopy",
                     "s3:CompleteMultipartUpload"],
    "s3:DeleteObject": ["s3:DeleteObjects"],
    "s3:ListMultipartUploadParts": ["s3:ListParts"],
    "s3:ListBucket": ["s3:ListObjects", "s3:ListObjectsV2", "s3:HeadBucket"],
    "s3:ListBucketVersions": ["s3:ListObjectVersions"],
    "s3:GetBucketObjectLockConfiguration": ["s3:GetObjectLockConfiguration"],
    "s3:GetReplicationConfiguration": ["s3:GetBucketReplication"],
}


def client(service, creds=None, endpoint=None):
    kw = {"region_name": REGION, "endpoint_url": endpoint or os.environ["AWS_ENDPOINT_URL"]}
    if creds:
        kw.update(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"])
        if creds.get("SessionToken"):
            kw["aws_session_token"] = creds["SessionToken"]
    return boto3.client(service, **kw)


def transformed():
    """infra/template.yaml as CloudFormation JSON (the SAM transform, offline)."""
    with open(TEMPLATE) as f:
        tpl, errors = decode_str(f.read())
    assert not errors, errors
    tpl = json.loads(json.dumps(tpl))
    for r in tpl["Resources"].values():
        if r["Type"] == "AWS::Serverless::Function":
            r["Properties"]["CodeUri"] = f"s3://{CODE_BUCKET}/bootstrap.zip"

    class NoManagedPolicies:
        def load(self):
            return {}

    return transform(tpl, {}, NoManagedPolicies())


def for_moto(cfn, api_url):
    """The transformed template with moto's gaps worked around (see MOTO_GAPS)."""
    res = cfn["Resources"]
    for name in [n for n, r in res.items() if r["Type"].startswith("AWS::ApiGateway::")]:
        del res[name]
    dropped = ("AWS::Lambda::Permission", "AWS::SQS::QueuePolicy", "AWS::Scheduler::ScheduleGroup",
               "AWS::Scheduler::Schedule") + AFTER_STACK
    for name in [n for n, r in res.items() if r["Type"] in dropped]:
        del res[name]
    for r in res.values():
        deps = r.get("DependsOn")
        if isinstance(deps, str):
            deps = [deps]
        if deps:
            r["DependsOn"] = [d for d in deps if d in res]
        if r["Type"] == "AWS::S3::Bucket":
            r["Properties"].pop("NotificationConfiguration", None)
        if r["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in r["Properties"]:
            r["Properties"].pop("Targets", None)
        if r["Type"] == "AWS::IAM::Role":
            for p in r["Properties"].get("Policies", []):
                for st in p["PolicyDocument"]["Statement"]:
                    for_moto_statement(st)
    cfn["Outputs"]["ApiUrl"]["Value"] = api_url
    return cfn


def for_moto_statement(st):
    """One policy statement with moto's gaps in IAM worked around (see MOTO_GAPS)."""
    acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
    if all(a.startswith("dynamodb:") for a in acts):
        st["Resource"] = "*"
        if "dynamodb:PutItem" in acts:
            acts = acts + ["dynamodb:TransactWriteItems"]
    if all(a.startswith("events:") for a in acts):
        st["Resource"] = "*"
    operations = [o for a in acts for o in S3_OPERATIONS_OF.get(a, []) if o not in acts]
    st["Action"] = acts + sorted(set(operations))


def deploy(name, api_url, parameters):
    """Creates the stack and returns it: {logical id: physical id}, outputs, the template."""
    s3 = client("s3")
    s3.create_bucket(Bucket=CODE_BUCKET)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n# placeholder: the rehearsal runs target/debug binaries\n")
    s3.put_object(Bucket=CODE_BUCKET, Key="bootstrap.zip", Body=buf.getvalue())
    original = transformed()
    cfn = for_moto(json.loads(json.dumps(original)), api_url)
    cf = client("cloudformation")
    cf.create_stack(
        StackName=name,
        TemplateBody=json.dumps(cfn),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
    )
    stack = cf.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    resources = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cf.describe_stack_resources(StackName=name)["StackResources"]
    }
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources.update(after_stack(original, name, resources, parameters))
    return {"resources": resources, "outputs": outputs, "template": cfn, "original": original}


def after_stack(original, name, resources, parameters):
    """Creates the resources of `AFTER_STACK` types that the template declares (moto's gap),
    from their own properties with every intrinsic function resolved against the stack:
    {logical id: physical id} (an alarm's name, a subscription's ARN)."""
    values = {k: str(v.get("Default", "")) for k, v in original.get("Parameters", {}).items()}
    values.update({k: str(v) for k, v in parameters.items()})
    account = client("sts").get_caller_identity()["Account"]
    values.update({"AWS::StackName": name, "AWS::Region": REGION, "AWS::AccountId": account,
                   "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"})
    values.update(resources)
    resolve = Resolver(original, values)
    made = {}
    for logical, r in original["Resources"].items():
        if r["Type"] not in AFTER_STACK or not resolve.condition(r.get("Condition")):
            continue
        props = resolve(r.get("Properties", {}))
        if r["Type"] == "AWS::CloudWatch::Alarm":
            client("cloudwatch").put_metric_alarm(**alarm_request(props))
            made[logical] = props["AlarmName"]
        else:
            sub = client("sns").subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"],
                                          Endpoint=props["Endpoint"], ReturnSubscriptionArn=True)
            made[logical] = sub["SubscriptionArn"]
    return made


def alarm_request(props):
    """PutMetricAlarm's request from AWS::CloudWatch::Alarm's properties (the same names; numbers
    that came from parameters are strings)."""
    req = dict(props)
    for k in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if k in req:
            req[k] = int(req[k])
    if "Threshold" in req:
        req["Threshold"] = float(req["Threshold"])
    for q in req.get("Metrics", []):
        if "Period" in q:
            q["Period"] = int(q["Period"])
        if "MetricStat" in q:
            q["MetricStat"]["Period"] = int(q["MetricStat"]["Period"])
    return req


class Resolver:
    """CloudFormation's intrinsic functions over a deployed stack: Ref (parameters, pseudo
    parameters, physical ids), Fn::GetAtt (what queues, functions and topics answer), Fn::Sub,
    Fn::Join, Fn::If and the conditions."""

    def __init__(self, template, values):
        self.template, self.values = template, values

    def __call__(self, v):
        if isinstance(v, list):
            return [self(x) for x in v]
        if not isinstance(v, dict):
            return v
        if len(v) == 1:
            (fn, arg), = v.items()
            if fn == "Ref":
                return self.values[arg]
            if fn == "Fn::GetAtt":
                return self.getatt(*(arg.split(".", 1) if isinstance(arg, str) else arg))
            if fn == "Fn::Sub":
                text, local = (arg, {}) if isinstance(arg, str) else (arg[0], self(arg[1]))
                return re.sub(r"\$\{(!?)([^}]*)\}", lambda m: self.sub(m, local), text)
            if fn == "Fn::Join":
                return arg[0].join(str(x) for x in self(arg[1]))
            if fn == "Fn::If":
                return self(arg[1] if self.condition(arg[0]) else arg[2])
        return {k: self(x) for k, x in v.items()}

    def sub(self, m, local):
        if m.group(1):  # ${!Literal}
            return "${" + m.group(2) + "}"
        name = m.group(2)
        if name in local:
            return str(local[name])
        return str(self.getatt(*name.split(".", 1)) if "." in name else self.values[name])

    def getatt(self, logical, attr):
        kind = self.template["Resources"][logical]["Type"]
        physical = self.values[logical]
        if kind == "AWS::SQS::Queue":
            arn = client("sqs").get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])
            return {"Arn": arn["Attributes"]["QueueArn"], "QueueName": physical.rsplit("/", 1)[-1]}[attr]
        if kind == "AWS::Lambda::Function" and attr == "Arn":
            return client("lambda").get_function(FunctionName=physical)["Configuration"]["FunctionArn"]
        if kind == "AWS::SNS::Topic" and attr == "TopicArn":
            return physical
        raise NotImplementedError(f"Fn::GetAtt {logical}.{attr} ({kind})")

    def condition(self, c):
        if c is None:
            return True
        if isinstance(c, str):
            return self.condition(self.template["Conditions"][c])
        (fn, arg), = c.items()
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            return str(self(arg[0])) == str(self(arg[1]))
        if fn == "Fn::Not":
            return not self.condition(arg[0])
        if fn == "Fn::And":
            return all(self.condition(x) for x in arg)
        if fn == "Fn::Or":
            return any(self.condition(x) for x in arg)
        raise NotImplementedError(fn)


def role_policy(iam, role, name):
    """An inline policy of a role, as a dict."""
    doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    # moto keeps a policy CloudFormation resolved as Python's repr of a dict
    return ast.literal_eval(doc) if isinstance(doc, str) else doc


def session_arn(role_arn, session):
    """The ARN of a session of a role (what moto compares trust principals with)."""
    account, name = role_arn.split(":")[4], role_arn.split("/")[-1]
    return f"arn:aws:sts::{account}:assumed-role/{name}/{session}"


def trusting_sessions(doc, sessions):
    """A trust policy whose role principals also name their sessions (`sessions`: role ARN ->
    session name)."""
    for st in doc["Statement"]:
        aws = st.get("Principal", {}).get("AWS")
        if aws:
            aws = aws if isinstance(aws, list) else [aws]
            st["Principal"]["AWS"] = aws + [session_arn(a, sessions[a]) for a in aws if a in sessions]
    return doc


def fix_roles(stack, admin_arn, sessions):
    """Puts every inline policy of the stack's roles again as JSON, attaches the managed
    policies moto's CloudFormation left out, lets the admin assume the function roles and the
    function sessions assume the roles that trust their roles (moto's gaps above)."""
    iam = client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "sts:AssumeRole"}],
    }
    for logical, r in stack["template"]["Resources"].items():
        if r["Type"] != "AWS::IAM::Role":
            continue
        role = stack["resources"][logical]
        for p in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            doc = role_policy(iam, role, p)
            doc.setdefault("Version", "2012-10-17")
            iam.put_role_policy(RoleName=role, PolicyName=p, PolicyDocument=json.dumps(doc))
        attached = {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}
        for arn in r["Properties"].get("ManagedPolicyArns", []):
            if arn not in attached:
                iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        principals = r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        if "Service" in principals:
            iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(trust))
        else:
            doc = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
            doc = ast.literal_eval(doc) if isinstance(doc, str) else doc
            iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(trusting_sessions(doc, sessions)))


def notifications(stack):
    """The specs bucket's notification, as the template declares it (moto ignores it there)."""
    original = stack["original"]["Resources"]
    sqs = client("sqs")
    for logical, r in original.items():
        conf = r["Properties"].get("NotificationConfiguration") if r["Type"] == "AWS::S3::Bucket" else None
        if not conf:
            continue
        queues = []
        for q in conf.get("QueueConfigurations", []):
            queue_logical = q["Queue"]["Fn::GetAtt"][0]
            url = stack["resources"][queue_logical]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            rules = [{"Name": x["Name"], "Value": x["Value"]} for x in q["Filter"]["S3Key"]["Rules"]]
            queues.append({"QueueArn": arn, "Events": [q["Event"]], "Filter": {"Key": {"FilterRules": rules}}})
        client("s3").put_bucket_notification_configuration(
            Bucket=stack["resources"][logical], NotificationConfiguration={"QueueConfigurations": queues}
        )
