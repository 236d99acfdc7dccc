/** `BatchOps`: infra/template.yaml included, its functions' code as assets, its parameters. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { CfnOutput, CfnWaitConditionHandle, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { BatchOps, BatchOpsParameters, KnownParameters } from '../src';
import { BINARIES, getAtt, placeholder, placeholderCode, TEMPLATE_TEXT, tempDir, testApp } from './fixtures';

const SERVERLESS_FUNCTION = 'AWS::Serverless::Function';

function synth(parameters?: BatchOpsParameters, codeDirectory = placeholderCode()) {
  const app = testApp();
  const stack = new Stack(app, 'batchops');
  const batchops = new BatchOps(stack, 'BatchOps', { codeDirectory, parameters });
  const template = Template.fromStack(stack);
  return { app, stack, batchops, template, json: template.toJSON() };
}

describe('BatchOps', () => {
  const { app, stack, batchops, template, json } = synth();

  test('includes the SAM template: its transform, globals, logical IDs and outputs', () => {
    assert.equal(json.Transform, 'AWS::Serverless-2016-10-31');
    assert.equal(json.Globals.Function.Runtime, 'provided.al2023');
    assert.deepEqual(json.Globals.Function.Environment.Variables.BATCHOPS_TABLE, { Ref: 'JobsTable' });
    const resources = TEMPLATE_TEXT.slice(TEMPLATE_TEXT.indexOf('\nResources:'), TEMPLATE_TEXT.indexOf('\nOutputs:'));
    const declared = [...resources.matchAll(/^ {2}([A-Za-z0-9]+):\n {4}Type: ([\w:]+)/gm)];
    assert.ok(declared.length > 40, `${declared.length} resources read from the template`);
    for (const [, logicalId, type] of declared) {
      assert.equal(json.Resources[logicalId]?.Type, type, logicalId);
    }
    for (const output of ['ApiUrl', 'SpecsBucket', 'ExampleJobRoleArn', 'AlarmTopic', 'Dashboard']) {
      template.hasOutput(output, {});
    }
  });

  test("every AWS::Serverless::Function's CodeUri is the asset of its binary", () => {
    const functions = Object.entries(json.Resources as Record<string, any>).filter(([, r]) => r.Type === SERVERLESS_FUNCTION);
    assert.equal(functions.length, BINARIES.length);
    assert.ok(functions.length >= 6);
    for (const [logicalId, resource] of functions) {
      const binary = resource.Metadata.BuildProperties.Binary;
      const asset = batchops.functionCode[logicalId];
      assert.deepEqual(resource.Properties.CodeUri, {
        Bucket: { 'Fn::Sub': 'cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}' },
        Key: `${asset.assetHash}.zip`,
      }, logicalId);
      const staged = path.join(app.outdir, asset.assetPath, 'bootstrap');
      assert.equal(fs.readFileSync(staged, 'utf8'), placeholder(binary), `${logicalId} runs ${binary}`);
    }
    // Each binary is its own asset: no two functions share code.
    const keys = functions.map(([, r]) => r.Properties.CodeUri.Key);
    assert.equal(new Set(keys).size, keys.length);
  });

  test('a bootstrap.zip is uploaded as it is', () => {
    const code = placeholderCode();
    const zip = path.join(code, 'task-executor', 'bootstrap.zip');
    fs.writeFileSync(zip, 'PK\u0005\u0006' + '\u0000'.repeat(18)); // an empty zip archive
    const { batchops, json } = synth(undefined, code);
    const asset = batchops.functionCode.TaskExecutorFunction;
    assert.equal(json.Resources.TaskExecutorFunction.Properties.CodeUri.Key, `${asset.assetHash}.zip`);
    assert.ok(asset.isZipArchive);
    assert.ok(asset.assetPath.endsWith('.zip'), asset.assetPath);
  });

  test('a missing binary fails naming the folder and how to build it', () => {
    const code = placeholderCode(BINARIES.filter((b) => b !== 'manifest-chunker'));
    assert.throws(
      () => synth(undefined, code),
      /ManifestChunkerFunction runs binary manifest-chunker, but .*manifest-chunker holds neither bootstrap.zip nor bootstrap \(cargo lambda build/,
    );
    assert.throws(() => synth(undefined, tempDir('empty')), /neither bootstrap.zip nor bootstrap/);
  });

  test('the service token is the output BatchopsJobServiceToken, exported by stack name', () => {
    template.hasOutput('BatchopsJobServiceToken', {
      Export: { Name: { 'Fn::Sub': '${AWS::StackName}-BatchopsJobServiceToken' } },
    });
    assert.equal(json.Resources.JobResourceFunction.Type, SERVERLESS_FUNCTION);
    assert.equal(json.Resources.JobResourceFunction.Metadata.BuildProperties.Binary, 'job-intake-resource');
    assert.deepEqual(getAtt(stack.resolve(batchops.serviceToken)), ['JobResourceFunction', 'Arn']);
    assert.deepEqual(getAtt(json.Outputs.BatchopsJobServiceToken.Value), ['JobResourceFunction', 'Arn']);
  });

  test('apiUrl and specsBucket are the outputs ApiUrl and SpecsBucket', () => {
    assert.deepEqual(stack.resolve(batchops.specsBucket), { Ref: 'SpecsBucket' });
    assert.deepEqual(stack.resolve(batchops.apiUrl), {
      'Fn::Join': ['', ['https://', { Ref: 'JobsApi' }, '.execute-api.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }, '/v1']],
    });
    assert.equal(json.Outputs.ApiUrl.Value['Fn::Sub'], 'https://${JobsApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/v1');
  });

  test('a resource referencing what only SAM creates is included as written, under its own logical ID', () => {
    // ExampleJobRole trusts the functions' roles, which the SAM transform makes.
    const principals = json.Resources.ExampleJobRole.Properties.AssumeRolePolicyDocument.Statement[0].Principal.AWS;
    assert.deepEqual(principals[0], { 'Fn::GetAtt': ['JobIntakeFunctionRole', 'Arn'] });
    assert.deepEqual(getAtt(json.Outputs.ExampleJobRoleArn.Value), ['ExampleJobRole', 'Arn']);
  });

  test('KnownParameters names exactly the template parameters', () => {
    // A missing or extra name here fails to compile; a parameter the template gains fails below.
    const typed: Record<keyof KnownParameters, true> = {
      ChunkSize: true, TaskConcurrency: true, MaxAttempts: true, ExecutorMaxConcurrency: true,
      MultipartThreshold: true, CopyPartSize: true, CopyPartConcurrency: true, MaxTasks: true,
      LambdaFunctionPattern: true, DataBucketPattern: true, EventBusName: true, JobRoleNamePattern: true,
      LogRetentionDays: true, MetricsNamespace: true, AlarmEmail: true,
    };
    const declared = Object.keys(json.Parameters).filter((p) => p !== 'BootstrapVersion');
    assert.deepEqual(Object.keys(typed).sort(), declared.sort());
  });
});

test('a resource referencing what only SAM creates keeps its Condition, DependsOn and the values put in place', () => {
  // A template of its own, with what infra/template.yaml does not have (yet).
  const file = path.join(tempDir('template'), 'template.yaml');
  fs.writeFileSync(file, `
Transform: AWS::Serverless-2016-10-31
Parameters:
  Pattern: { Type: String, Default: "*" }
  Enabled: { Type: String, Default: "yes", AllowedValues: ["yes", "no"] }
Conditions:
  IsEnabled: !Equals [!Ref Enabled, "yes"]
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Metadata: { BuildMethod: rust-cargolambda, BuildProperties: { Binary: worker } }
    Properties: { CodeUri: .., Handler: bootstrap, Runtime: provided.al2023 }
  Queue:
    Type: AWS::SQS::Queue
  Trusting:
    Type: AWS::IAM::Role
    Condition: IsEnabled
    DependsOn: Queue
    Properties:
      RoleName: !Ref Pattern
      AssumeRolePolicyDocument:
        Statement:
          - { Effect: Allow, Action: sts:AssumeRole, Principal: { AWS: !GetAtt WorkerRole.Arn } }
      Description: !Sub "jobs of \${Pattern} when \${Enabled} (\${!Literal})"
`);
  const stack = new Stack(testApp(), 'small');
  const parameters = { Pattern: 'batchops-jobs' };
  new BatchOps(stack, 'BatchOps', { codeDirectory: placeholderCode(['worker']), templateFile: file, parameters });
  const json = Template.fromStack(stack).toJSON();
  assert.deepEqual(json.Resources.Trusting, {
    Type: 'AWS::IAM::Role',
    Condition: 'IsEnabled',
    DependsOn: 'Queue',
    Properties: {
      RoleName: 'batchops-jobs',
      AssumeRolePolicyDocument: {
        Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Principal: { AWS: { 'Fn::GetAtt': ['WorkerRole', 'Arn'] } } }],
      },
      Description: { 'Fn::Sub': ['jobs of ${Pattern} when ${Enabled} (${!Literal})', { Pattern: 'batchops-jobs' }] },
    },
  });
  assert.deepEqual(json.Conditions.IsEnabled, { 'Fn::Equals': [{ Ref: 'Enabled' }, 'yes'] });
  assert.equal(json.Parameters.Pattern, undefined);
});

describe('BatchOps parameters', () => {
  const given: BatchOpsParameters = {
    ChunkSize: 1000,
    ExecutorMaxConcurrency: 300,
    JobRoleNamePattern: 'batchops-job-*',
    DataBucketPattern: 'my-data-*',
    LogRetentionDays: 90,
  };
  const { json } = synth(given);
  const text = JSON.stringify(json);

  test('are put in place of the template parameters, as strings', () => {
    const referenced = namesReferenced(json);
    for (const name of Object.keys(given)) {
      assert.equal(json.Parameters[name], undefined, `${name} is no longer a parameter`);
      assert.ok(!referenced.has(name), `${name} is referenced nowhere`);
    }
    assert.ok(referenced.has('TaskConcurrency') && referenced.has('JobsTable'));
    const env = json.Globals.Function.Environment.Variables;
    assert.equal(env.BATCHOPS_CHUNK_SIZE, '1000');
    assert.equal(env.BATCHOPS_EXECUTOR_CAPACITY, '300');
    assert.equal(json.Resources.TaskExecutorFunction.Properties.Events.Chunks.Properties.ScalingConfig.MaximumConcurrency, '300');
    // A typed L1 property (AWS::Logs::LogGroup's) takes it as its type.
    assert.equal(json.Resources.JobIntakeLogGroup.Properties.RetentionInDays, 90);
    assert.ok(text.includes(':role/batchops-job-*'));
    // What was not given stays a parameter with the template's default.
    assert.equal(json.Parameters.TaskConcurrency.Default, 128);
    assert.deepEqual(env.BATCHOPS_TASK_CONCURRENCY, { Ref: 'TaskConcurrency' });
  });

  test('reach a resource included as written too', () => {
    const statements = json.Resources.ExampleJobRole.Properties.Policies[0].PolicyDocument.Statement;
    assert.deepEqual(statements[0].Resource, {
      'Fn::Sub': ['arn:${AWS::Partition}:s3:::${DataBucketPattern}/*', { DataBucketPattern: 'my-data-*' }],
    });
    assert.deepEqual(statements[2].Resource, {
      'Fn::Sub': 'arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${LambdaFunctionPattern}',
    });
  });

  test('stand in outputs read from another stack', () => {
    const app = testApp();
    const stack = new Stack(app, 'batchops');
    const batchops = new BatchOps(stack, 'BatchOps', { codeDirectory: placeholderCode(), parameters: given });
    const other = new Stack(app, 'other');
    new CfnWaitConditionHandle(other, 'Resource'); // a template has at least one resource
    new CfnOutput(other, 'Api', { value: batchops.apiUrl });
    new CfnOutput(other, 'Token', { value: batchops.serviceToken });
    const outputs = Template.fromStack(other).toJSON().Outputs;
    const imported = outputs.Api.Value['Fn::Join'][1][1]['Fn::ImportValue'];
    assert.match(imported, /^batchops:ExportsOutputRefJobsApi/);
    assert.match(outputs.Token.Value['Fn::ImportValue'], /^batchops:ExportsOutputFnGetAttJobResourceFunctionArn/);
    const exports = Template.fromStack(stack).toJSON().Outputs;
    const exported = Object.values(exports).find((o: any) => o.Export?.Name === imported) as any;
    assert.deepEqual(exported.Value, { Ref: 'JobsApi' });
  });

  test('outside the template constraints fail with the constraint', () => {
    const cases: [BatchOpsParameters, RegExp][] = [
      [{ ChunkSize: 0 }, /BatchOps parameter ChunkSize: 0 is below the template's MinValue 1/],
      [{ ExecutorMaxConcurrency: 1001 }, /ExecutorMaxConcurrency: 1001 is above the template's MaxValue 1000/],
      [{ TaskConcurrency: 'many' as any }, /TaskConcurrency: "many" is not a number/],
      [{ LogRetentionDays: 42 }, /LogRetentionDays: 42 is not one of the template's AllowedValues 1, 3, 5/],
      [{ AlarmEmail: 'ops at example.com' }, /AlarmEmail: "ops at example.com" does not match the template's AllowedPattern/],
      [{ MetricsNamespace: 'batchops prod' }, /MetricsNamespace: "batchops prod" does not match/],
      [{ DataBucketPattern: 7 as any }, /DataBucketPattern: 7 is not a string/],
      [{ ChunkSise: 1000 }, /BatchOps parameter ChunkSise: .*template.yaml declares no such parameter/],
    ];
    for (const [parameters, error] of cases) {
      assert.throws(() => new BatchOps(new Stack(testApp(), 's'), 'B', { codeDirectory: placeholderCode(), parameters }), error);
    }
    // Values the template allows pass.
    new BatchOps(new Stack(testApp(), 's'), 'B', {
      codeDirectory: placeholderCode(),
      parameters: { AlarmEmail: '', MetricsNamespace: 'batchops/prod', LogRetentionDays: 14, MaxTasks: 2e10, ChunkSize: '500' as any },
    });
  });
});

/** The names a template references: `Ref`s, and `${Name}`s of `Fn::Sub` strings its variable map does not give. */
function namesReferenced(value: any, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    value.forEach((v) => namesReferenced(v, out));
  } else if (value !== null && typeof value === 'object') {
    if (typeof value.Ref === 'string') {
      out.add(value.Ref);
    }
    const sub = value['Fn::Sub'];
    if (sub !== undefined) {
      const [text, map] = Array.isArray(sub) ? sub : [sub, {}];
      for (const [, name] of String(text).matchAll(/\$\{([A-Za-z0-9]+)\}/g)) {
        if (!(name in map)) {
          out.add(name);
        }
      }
    }
    Object.values(value).forEach((v) => namesReferenced(v, out));
  }
  return out;
}
