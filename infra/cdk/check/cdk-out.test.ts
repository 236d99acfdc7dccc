/**
 * The example app as `cdk synth` wrote it (scripts/cdk-test.sh runs this after the synth, with
 * BATCHOPS_CDK_OUT naming the cloud assembly): the stack holds every resource of
 * infra/template.yaml with each function's code staged, and the job stack's
 * `Custom::BatchopsJob` takes its service token from the stack's export.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { getAtt, TEMPLATE_TEXT } from '../test/fixtures';

const CDK_OUT = process.env.BATCHOPS_CDK_OUT ?? '';
const read = (file: string) => JSON.parse(fs.readFileSync(path.join(CDK_OUT, file), 'utf8'));

test('the cloud assembly holds the two stacks of the example', () => {
  assert.ok(CDK_OUT !== '' && fs.existsSync(path.join(CDK_OUT, 'manifest.json')), `no cloud assembly at "${CDK_OUT}"`);
  const stacks = Object.entries(read('manifest.json').artifacts as Record<string, any>)
    .filter(([, a]) => a.type === 'aws:cloudformation:stack')
    .map(([id]) => id);
  assert.deepEqual(stacks.sort(), ['batchops', 'batchops-jobs']);
});

test('the batchops stack holds every resource of infra/template.yaml, and its transform', () => {
  const template = read('batchops.template.json');
  assert.equal(template.Transform, 'AWS::Serverless-2016-10-31');
  const section = TEMPLATE_TEXT.slice(TEMPLATE_TEXT.indexOf('\nResources:'), TEMPLATE_TEXT.indexOf('\nOutputs:'));
  const declared = [...section.matchAll(/^ {2}([A-Za-z0-9]+):\n {4}Type: ([\w:]+)/gm)];
  assert.ok(declared.length > 40);
  for (const [, logicalId, type] of declared) {
    assert.equal(template.Resources[logicalId]?.Type, type, logicalId);
  }
  assert.equal(template.Parameters.DataBucketPattern, undefined, 'the example gives DataBucketPattern');
});

test("every function's code is a staged asset of the cloud assembly", () => {
  const template = read('batchops.template.json');
  const files = read('batchops.assets.json').files as Record<string, any>;
  const functions = Object.entries(template.Resources as Record<string, any>).filter(([, r]) => r.Type === 'AWS::Serverless::Function');
  assert.ok(functions.length >= 7, `${functions.length} functions`);
  for (const [logicalId, resource] of functions) {
    const key: string = resource.Properties.CodeUri.Key;
    const asset = files[key.replace(/\.zip$/, '')];
    assert.ok(asset, `${logicalId}: no asset ${key}`);
    assert.equal(asset.source.packaging, 'zip');
    assert.ok(fs.existsSync(path.join(CDK_OUT, asset.source.path, 'bootstrap')), `${logicalId}: ${asset.source.path}/bootstrap`);
  }
});

test('the job stack has the Custom::BatchopsJob, run by the function the batchops stack exports', () => {
  const jobs = read('batchops-jobs.template.json');
  const resources = Object.values(jobs.Resources as Record<string, any>).filter((r) => r.Type === 'Custom::BatchopsJob');
  assert.equal(resources.length, 1);
  const properties = resources[0].Properties;
  assert.deepEqual(Object.keys(properties.Operation), ['S3PutObjectTagging']);
  assert.equal(properties.Manifest.Spec.Format, 'S3BatchOperations_CSV_20180820');
  assert.equal(properties.WaitFor, 'Complete');
  assert.equal(properties.ServiceTimeout, '1800');
  const exportName = properties.ServiceToken['Fn::ImportValue'];
  const outputs = Object.values(read('batchops.template.json').Outputs as Record<string, any>);
  const exported = outputs.find((o) => o.Export?.Name === exportName);
  assert.ok(exported, `batchops exports no ${exportName}`);
  assert.deepEqual(getAtt(exported.Value), ['JobResourceFunction', 'Arn']);
  assert.deepEqual(getAtt(jobs.Outputs.JobId.Value)[1], 'JobId');
});
