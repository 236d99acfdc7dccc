/**
 * An example CDK app: the batchops stack (`batchops`), and a stack of one batchops job
 * (`batchops-jobs`) that tags every object a CSV manifest lists and waits for the job to end.
 *
 * Deploying it (from the repository root, with credentials and a bootstrapped account):
 *
 *   cargo lambda build --release --arm64 --output-format zip   # target/lambda/<binary>/bootstrap.zip
 *   cd infra/cdk && npm ci && npm run build && cd example
 *   npx cdk deploy --all -c manifestObjectArn=arn:aws:s3:::my-bucket/tag-these.csv \
 *     -c manifestETag=<its ETag> -c reportBucketArn=arn:aws:s3:::my-bucket -c dataBucketPattern=my-bucket
 *
 * The code folder is `-c codeDirectory=...`, else target/lambda of the repository (or of
 * CARGO_TARGET_DIR). scripts/cdk-test.sh synthesizes this app with a folder of placeholder
 * `bootstrap` files instead: synthesis stages the files as assets and never runs them.
 */
import * as path from 'node:path';
import { App, CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import { BatchOps, BatchopsJob } from '../src';

const app = new App();
const context = (name: string): string => {
  const value = app.node.tryGetContext(name);
  if (typeof value !== 'string' || value === '') {
    throw new Error(`the example needs the context value ${name} (cdk.json, or -c ${name}=...)`);
  }
  return value;
};

const repository = path.resolve(__dirname, '..', '..', '..', '..');
const codeDirectory: string =
  app.node.tryGetContext('codeDirectory') ??
  path.join(path.resolve(repository, process.env.CARGO_TARGET_DIR ?? 'target'), 'lambda');

const batchops = new BatchOps(new Stack(app, 'batchops'), 'BatchOps', {
  codeDirectory,
  parameters: {
    // The example job role may use this bucket only.
    DataBucketPattern: context('dataBucketPattern'),
    ChunkSize: 5000,
  },
});

// A job of its own stack: CDK exports the service token and the role from `batchops` and
// imports them here. A stack deployed with `sam deploy` is reached the same way with
// `service: Fn.importValue('batchops-BatchopsJobServiceToken')`.
const jobs = new Stack(app, 'batchops-jobs');
const tagging = new BatchopsJob(jobs, 'TagManifestObjects', {
  service: batchops,
  operation: { S3PutObjectTagging: { TagSet: [{ Key: 'reviewed', Value: 'yes' }] } },
  manifest: {
    Spec: { Format: 'S3BatchOperations_CSV_20180820', Fields: ['Bucket', 'Key'] },
    Location: { ObjectArn: context('manifestObjectArn'), ETag: context('manifestETag') },
  },
  report: {
    Enabled: true,
    Bucket: context('reportBucketArn'),
    Format: 'Report_CSV_20180820',
    Prefix: 'batchops-reports',
    ReportScope: 'FailedTasksOnly',
  },
  priority: 10,
  roleArn: batchops.output('ExampleJobRoleArn'),
  description: 'tag the objects of the manifest (CDK example)',
  maxTasksPerSecond: 1000,
  waitFor: 'Complete',
  serviceTimeout: Duration.minutes(30),
});

new CfnOutput(jobs, 'JobId', { value: tagging.jobId });
new CfnOutput(jobs, 'JobStatus', { value: tagging.status });
new CfnOutput(jobs, 'TasksSucceeded', { value: tagging.numberOfTasksSucceeded });
new CfnOutput(jobs, 'TasksFailed', { value: tagging.numberOfTasksFailed });
new CfnOutput(jobs, 'ApiUrl', { value: batchops.apiUrl });
