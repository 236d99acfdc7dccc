/** `BatchopsJob`: `Custom::BatchopsJob` with CreateJob's members, its attributes, its checks. */
import * as assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CfnParameter, Duration, Fn, Stack, Token } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { BatchOps, BatchopsJob, BatchopsJobProps } from '../src';
import { getAtt, placeholderCode, testApp } from './fixtures';

const SERVICE = Fn.importValue('batchops-BatchopsJobServiceToken');

/** A tagging job of a CSV manifest, every member given. */
const TAGGING: Omit<BatchopsJobProps, 'service'> = {
  operation: { S3PutObjectTagging: { TagSet: [{ Key: 'reviewed', Value: 'yes' }] } },
  manifest: {
    Spec: { Format: 'S3BatchOperations_CSV_20180820', Fields: ['Bucket', 'Key'] },
    Location: { ObjectArn: 'arn:aws:s3:::data/manifests/tag.csv', ETag: '"0123456789abcdef"' },
  },
  report: { Enabled: true, Bucket: 'arn:aws:s3:::reports', Format: 'Report_CSV_20180820', Prefix: 'batchops', ReportScope: 'AllTasks' },
  priority: 10,
  roleArn: 'arn:aws:iam::123456789012:role/batchops-job',
  description: 'tag what the manifest lists',
  confirmationRequired: false,
  tags: [{ Key: 'team', Value: 'storage' }],
  maxTasksPerSecond: 500,
  dryRun: true,
  waitFor: 'Complete',
  serviceTimeout: Duration.minutes(45),
};

function job(props: Partial<BatchopsJobProps>, stack = new Stack(testApp(), 'jobs')): BatchopsJob {
  return new BatchopsJob(stack, 'Job', { service: SERVICE, ...TAGGING, ...props } as BatchopsJobProps);
}

describe('BatchopsJob', () => {
  test('renders Custom::BatchopsJob with the PascalCase members, run by the included function', () => {
    const stack = new Stack(testApp(), 'batchops');
    const batchops = new BatchOps(stack, 'BatchOps', { codeDirectory: placeholderCode() });
    new BatchopsJob(stack, 'Tagging', { service: batchops, ...TAGGING });
    const template = Template.fromStack(stack);
    template.resourceCountIs('Custom::BatchopsJob', 1);
    const [resource] = Object.values(template.findResources('Custom::BatchopsJob')) as any[];
    const { ServiceToken, ...properties } = resource.Properties;
    assert.deepEqual(getAtt(ServiceToken), ['JobResourceFunction', 'Arn']);
    assert.deepEqual(properties, {
      Operation: { S3PutObjectTagging: { TagSet: [{ Key: 'reviewed', Value: 'yes' }] } },
      Manifest: {
        Spec: { Format: 'S3BatchOperations_CSV_20180820', Fields: ['Bucket', 'Key'] },
        Location: { ObjectArn: 'arn:aws:s3:::data/manifests/tag.csv', ETag: '"0123456789abcdef"' },
      },
      Report: { Enabled: true, Bucket: 'arn:aws:s3:::reports', Format: 'Report_CSV_20180820', Prefix: 'batchops', ReportScope: 'AllTasks' },
      Priority: 10,
      RoleArn: 'arn:aws:iam::123456789012:role/batchops-job',
      Description: 'tag what the manifest lists',
      ConfirmationRequired: false,
      Tags: [{ Key: 'team', Value: 'storage' }],
      MaxTasksPerSecond: 500,
      DryRun: true,
      WaitFor: 'Complete',
      ServiceTimeout: '2700',
    });
    assert.equal(resource.DeletionPolicy, 'Delete', 'deleting the resource cancels the job');
  });

  test('takes a service token string, and sends only the members given', () => {
    const stack = new Stack(testApp(), 'jobs');
    new BatchopsJob(stack, 'Job', {
      service: SERVICE,
      operation: { S3DeleteObjectTagging: {} },
      manifestGenerator: { S3JobManifestGenerator: { SourceBucket: 'arn:aws:s3:::data', EnableManifestOutput: false } },
      report: { Enabled: false },
      priority: 0,
      roleArn: 'arn:aws:iam::123456789012:role/batchops-job',
    });
    const [resource] = Object.values(Template.fromStack(stack).findResources('Custom::BatchopsJob')) as any[];
    assert.deepEqual(resource.Properties, {
      ServiceToken: { 'Fn::ImportValue': 'batchops-BatchopsJobServiceToken' },
      Operation: { S3DeleteObjectTagging: {} },
      ManifestGenerator: { S3JobManifestGenerator: { SourceBucket: 'arn:aws:s3:::data', EnableManifestOutput: false } },
      Report: { Enabled: false },
      Priority: 0,
      RoleArn: 'arn:aws:iam::123456789012:role/batchops-job',
    });
    Template.fromStack(stack).hasResourceProperties('Custom::BatchopsJob', {
      ClientRequestToken: Match.absent(),
      ServiceTimeout: Match.absent(),
    });
  });

  test('from another stack, imports the service token the BatchOps stack exports', () => {
    const app = testApp();
    const batchops = new BatchOps(new Stack(app, 'batchops'), 'BatchOps', { codeDirectory: placeholderCode() });
    const jobs = new Stack(app, 'jobs');
    new BatchopsJob(jobs, 'Job', { service: batchops, ...TAGGING });
    Template.fromStack(jobs).hasResourceProperties('Custom::BatchopsJob', {
      ServiceToken: { 'Fn::ImportValue': Match.stringLikeRegexp('^batchops:ExportsOutputFnGetAttJobResourceFunctionArn') },
    });
  });

  test('its attributes are GetAtts of the resource', () => {
    const stack = new Stack(testApp(), 'jobs');
    const j = job({}, stack);
    const logicalId = stack.getLogicalId(j.resource.node.defaultChild as any);
    const attributes: [string, string][] = [
      [j.jobId, 'JobId'],
      [j.status, 'Status'],
      [j.reportManifest, 'ReportManifest'],
      [j.totalNumberOfTasks, 'TotalNumberOfTasks'],
      [j.numberOfTasksSucceeded, 'NumberOfTasksSucceeded'],
      [j.numberOfTasksFailed, 'NumberOfTasksFailed'],
    ];
    for (const [token, attribute] of attributes) {
      assert.ok(Token.isUnresolved(token));
      assert.deepEqual(stack.resolve(token), { 'Fn::GetAtt': [logicalId, attribute] });
    }
  });

  test('a bad member fails at synth, naming it', () => {
    const cases: [Partial<BatchopsJobProps>, RegExp][] = [
      [{ waitFor: 'Started' as any }, /BatchopsJob waitFor: must be 'Complete' .* not "Started"/],
      [{ priority: -1 }, /BatchopsJob priority: must be an integer from 0 to 2147483647, not -1/],
      [{ priority: 2147483648 }, /priority: must be an integer from 0 to 2147483647, not 2147483648/],
      [{ priority: 1.5 }, /priority: must be an integer/],
      [{ maxTasksPerSecond: 0 }, /maxTasksPerSecond: must be an integer from 1 to 1000000, not 0/],
      [{ operation: {} }, /operation: must have exactly one member, the operation .* not 0/],
      [{ operation: { S3PutObjectTagging: {}, S3DeleteObjectTagging: {} } }, /not 2: S3PutObjectTagging, S3DeleteObjectTagging/],
      [{ manifestGenerator: { S3JobManifestGenerator: {} } }, /manifest: give either manifest or manifestGenerator, not both/],
      [{ manifest: undefined }, /give either manifest or manifestGenerator, not both and not neither/],
      [{ roleArn: '' }, /roleArn: is required/],
      [{ description: 'x'.repeat(257) }, /description: must be 1 to 256 characters, not 257/],
      [{ tags: Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: 'v' })) }, /tags: at most 50, not 51/],
      [{ serviceTimeout: Duration.hours(2) }, /serviceTimeout must either be between 1 and 3600 seconds, got 7200/],
    ];
    for (const [props, error] of cases) {
      assert.throws(() => job(props), error, JSON.stringify(props));
    }
  });

  test('tokens are left for the function to check', () => {
    const stack = new Stack(testApp(), 'jobs');
    const priority = new CfnParameter(stack, 'Priority', { type: 'Number' }).valueAsNumber;
    job({ priority, roleArn: new CfnParameter(stack, 'Role').valueAsString }, stack);
    Template.fromStack(stack).hasResourceProperties('Custom::BatchopsJob', {
      Priority: { Ref: 'Priority' },
      RoleArn: { Ref: 'Role' },
    });
  });
});
