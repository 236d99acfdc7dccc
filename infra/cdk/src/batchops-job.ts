/**
 * `BatchopsJob`: a batchops job as a CloudFormation resource (`Custom::BatchopsJob`), run by
 * the stack's custom-resource function (`JobResourceFunction`, binary job-intake-resource).
 *
 * Its properties are S3 Control CreateJob's members as a JSON job spec takes them (PascalCase;
 * no ClientRequestToken: the function derives it), batchops' `MaxTasksPerSecond` and `DryRun`,
 * and `WaitFor`.
 *
 * Updates: a change of `Priority`, `MaxTasksPerSecond`, `Tags` or `WaitFor` changes the job
 * in place; any other change creates a new job, and CloudFormation then deletes the old
 * resource, which cancels the old job if it still runs. Deleting the resource cancels a
 * running job.
 */
import { CustomResource, Duration, Token } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { BatchOps } from './batchops';

/** The resource type of a batchops job. */
export const BATCHOPS_JOB_TYPE = 'Custom::BatchopsJob';

/** A job's tag, or an operation's (`S3PutObjectTagging`'s `TagSet`). */
export interface JobTag {
  readonly Key: string;
  readonly Value: string;
}

/** `Manifest` of CreateJob: a CSV manifest or an S3 Inventory report's manifest.json. */
export interface JobManifest {
  readonly Spec: {
    /** `S3BatchOperations_CSV_20180820` or `S3InventoryReport_CSV_20161130`. */
    readonly Format: string;
    /** A CSV manifest's columns: `Bucket`, `Key`, and `VersionId` or `Ignore`. @default Bucket, Key */
    readonly Fields?: string[];
  };
  readonly Location: {
    /** `arn:aws:s3:::bucket/key` of the manifest. */
    readonly ObjectArn: string;
    /** The manifest object's ETag: the job refuses a manifest that changed since. */
    readonly ETag: string;
    readonly ObjectVersionId?: string;
  };
}

/** `Report` of CreateJob: the completion report. */
export interface JobReport {
  readonly Enabled: boolean;
  /** `arn:aws:s3:::bucket` the report is written to. */
  readonly Bucket?: string;
  /** `Report_CSV_20180820`. */
  readonly Format?: string;
  readonly Prefix?: string;
  /** `AllTasks` or `FailedTasksOnly`. */
  readonly ReportScope?: string;
  readonly ExpectedBucketOwner?: string;
}

/**
 * `Operation` of CreateJob: one member, named after the operation, as in a job spec:
 * `{S3PutObjectTagging: {TagSet: [{Key: 'k', Value: 'v'}]}}`, `{S3PutObjectCopy: {...}}`,
 * `{LambdaInvoke: {FunctionArn: '...'}}` (the operations batchops runs: docs/src/operations.md).
 */
export type JobOperation = Readonly<Record<string, unknown>>;

/** `ManifestGenerator` of CreateJob: `{S3JobManifestGenerator: {SourceBucket, Filter, ...}}`. */
export type JobManifestGenerator = Readonly<Record<string, unknown>>;

/** What CloudFormation waits for before the resource is created or updated. */
export type JobWaitFor = 'Complete';

export interface BatchopsJobProps {
  /**
   * The batchops stack that runs the job: a `BatchOps` construct, or the ARN of its
   * custom-resource function, e.g. `Fn.importValue('batchops-BatchopsJobServiceToken')`
   * for a stack named batchops deployed with `sam deploy`.
   */
  readonly service: BatchOps | string;
  /** `Operation`: exactly one operation member. */
  readonly operation: JobOperation;
  /** `Manifest`; give it or `manifestGenerator`, not both. */
  readonly manifest?: JobManifest;
  /** `ManifestGenerator`; give it or `manifest`, not both. */
  readonly manifestGenerator?: JobManifestGenerator;
  /** `Report`; `{Enabled: false}` for none. */
  readonly report: JobReport;
  /** `Priority`: 0 to 2147483647, higher first. Changed in place. */
  readonly priority: number;
  /** `RoleArn`: the job's IAM role, which every request of the job is made with. */
  readonly roleArn: string;
  /** `Description`: 1 to 256 characters. */
  readonly description?: string;
  /** `ConfirmationRequired`: the job waits, Suspended, until confirmed. */
  readonly confirmationRequired?: boolean;
  /** `Tags`: at most 50. Changed in place. */
  readonly tags?: JobTag[];
  /** batchops `MaxTasksPerSecond`: 1 to 1,000,000 across all executors. Changed in place. */
  readonly maxTasksPerSecond?: number;
  /** batchops `DryRun`: run everything but the operation's writes and report what would happen. */
  readonly dryRun?: boolean;
  /**
   * `WaitFor`: `'Complete'` answers CloudFormation when the job has ended (the resource fails
   * if the job did not complete), within `serviceTimeout`. Changed in place.
   * @default - answered once the job is created
   */
  readonly waitFor?: JobWaitFor;
  /**
   * How long CloudFormation waits for the function's answer (the custom resource's
   * `ServiceTimeout`): 1 second to 1 hour.
   * @default - CloudFormation's default, 1 hour
   */
  readonly serviceTimeout?: Duration;
}

/** A batchops job made, changed and cancelled by CloudFormation. */
export class BatchopsJob extends Construct {
  public readonly resource: CustomResource;
  /** `JobId`. */
  public readonly jobId: string;
  /** `Status` when CloudFormation got its answer (`Complete` with `waitFor: 'Complete'`). */
  public readonly status: string;
  /** `ReportManifest`: where the report's manifest.json is, once the job ended with a report. */
  public readonly reportManifest: string;
  /** `TotalNumberOfTasks`. */
  public readonly totalNumberOfTasks: string;
  /** `NumberOfTasksSucceeded`. */
  public readonly numberOfTasksSucceeded: string;
  /** `NumberOfTasksFailed`. */
  public readonly numberOfTasksFailed: string;

  constructor(scope: Construct, id: string, props: BatchopsJobProps) {
    super(scope, id);
    checkProps(props);
    this.resource = new CustomResource(this, 'Resource', {
      resourceType: BATCHOPS_JOB_TYPE,
      serviceToken: typeof props.service === 'string' ? props.service : props.service.serviceToken,
      serviceTimeout: props.serviceTimeout,
      properties: jobProperties(props),
    });
    this.jobId = this.resource.getAttString('JobId');
    this.status = this.resource.getAttString('Status');
    this.reportManifest = this.resource.getAttString('ReportManifest');
    this.totalNumberOfTasks = this.resource.getAttString('TotalNumberOfTasks');
    this.numberOfTasksSucceeded = this.resource.getAttString('NumberOfTasksSucceeded');
    this.numberOfTasksFailed = this.resource.getAttString('NumberOfTasksFailed');
  }
}

/** The resource's properties, PascalCase as CreateJob takes them; members left out are not sent. */
function jobProperties(props: BatchopsJobProps): Record<string, unknown> {
  const all: Record<string, unknown> = {
    Operation: props.operation,
    Manifest: props.manifest,
    ManifestGenerator: props.manifestGenerator,
    Report: props.report,
    Priority: props.priority,
    RoleArn: props.roleArn,
    Description: props.description,
    ConfirmationRequired: props.confirmationRequired,
    Tags: props.tags,
    MaxTasksPerSecond: props.maxTasksPerSecond,
    DryRun: props.dryRun,
    WaitFor: props.waitFor,
  };
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
}

/**
 * What can be checked before deployment, with the limits the function applies (tokens are left
 * to it): a mistake fails `cdk synth`, not a stack update an hour later.
 */
function checkProps(props: BatchopsJobProps): void {
  const fail = (member: string, why: string): never => {
    throw new Error(`BatchopsJob ${member}: ${why}`);
  };
  const known = (v: unknown): boolean => v !== undefined && !Token.isUnresolved(v);
  if (known(props.waitFor) && props.waitFor !== 'Complete') {
    const given = JSON.stringify(props.waitFor);
    fail('waitFor', `must be 'Complete' (answer when the job has ended) or left out (answer once it is created), not ${given}`);
  }
  checkInteger('priority', props.priority, 0, 2_147_483_647, fail);
  checkInteger('maxTasksPerSecond', props.maxTasksPerSecond, 1, 1_000_000, fail);
  const operations = Object.keys(props.operation ?? {});
  if (!Token.isUnresolved(props.operation) && operations.length !== 1) {
    const given = `${operations.length}: ${operations.join(', ')}`;
    fail('operation', `must have exactly one member, the operation (S3PutObjectTagging, S3PutObjectCopy ...), not ${given}`);
  }
  if ((props.manifest === undefined) === (props.manifestGenerator === undefined)) {
    fail('manifest', 'give either manifest or manifestGenerator, not both and not neither');
  }
  if (known(props.roleArn) && props.roleArn === '') {
    fail('roleArn', 'is required');
  }
  const description = known(props.description) ? props.description! : undefined;
  if (description !== undefined && (description.length < 1 || description.length > 256)) {
    fail('description', `must be 1 to 256 characters, not ${description.length}`);
  }
  if (known(props.tags) && props.tags!.length > 50) {
    fail('tags', `at most 50, not ${props.tags!.length}`);
  }
}

function checkInteger(
  member: string,
  value: number | undefined,
  min: number,
  max: number,
  fail: (member: string, why: string) => never,
): void {
  if (value === undefined || Token.isUnresolved(value)) {
    return;
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    fail(member, `must be an integer from ${min} to ${max}, not ${value}`);
  }
}
