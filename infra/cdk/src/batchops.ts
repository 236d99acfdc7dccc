/**
 * `BatchOps`: the whole batchops stack in a CDK app, from infra/template.yaml itself.
 *
 * The SAM template stays the one source of the stack: `CfnInclude` reads it (its
 * `AWS::Serverless::*` resources become `aws_sam` L1s and the `Transform` line is kept, so
 * CloudFormation still expands them), and this construct changes two things only: the
 * parameters given are put in place of the template's parameters, checked first against the
 * template's own constraints (CloudFormation checks a parameter, not a value put in its place);
 * and every function's `CodeUri: ..`, which `sam build` would build with cargo-lambda, becomes
 * a CDK asset of the binary named in the function's `Metadata.BuildProperties.Binary`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Fn, Stack } from 'aws-cdk-lib';
import { Asset } from 'aws-cdk-lib/aws-s3-assets';
import { CfnInclude } from 'aws-cdk-lib/cloudformation-include';
import { Construct } from 'constructs';
import { checkParameter, readTemplate, replaceParameters, splitSub, Template, transformReferences } from './template';

/**
 * The parameters of infra/template.yaml (its `Parameters` section says what each means and
 * allows). A test keeps this list equal to the template's.
 */
export interface KnownParameters {
  readonly ChunkSize?: number;
  readonly TaskConcurrency?: number;
  readonly MaxAttempts?: number;
  readonly ExecutorMaxConcurrency?: number;
  readonly MultipartThreshold?: number;
  readonly CopyPartSize?: number;
  readonly CopyPartConcurrency?: number;
  readonly MaxTasks?: number;
  readonly LambdaFunctionPattern?: string;
  readonly DataBucketPattern?: string;
  readonly EventBusName?: string;
  readonly JobRoleNamePattern?: string;
  readonly LogRetentionDays?: number;
  readonly MetricsNamespace?: string;
  readonly AlarmEmail?: string;
}

/**
 * Values put in place of the template's parameters; those left out keep the template's
 * defaults. A name the template does not declare, or a value outside its `MinValue`,
 * `MaxValue`, `AllowedValues`, `AllowedPattern` or lengths, throws when the construct is made.
 * The index signature admits a parameter the template gained after `KnownParameters`.
 */
export interface BatchOpsParameters extends KnownParameters {
  readonly [name: string]: string | number | undefined;
}

export interface BatchOpsProps {
  /**
   * The folder of the function binaries: `<codeDirectory>/<binary>/bootstrap.zip` or
   * `<codeDirectory>/<binary>/bootstrap` for every binary the template's functions name, as
   * `cargo lambda build --release --arm64 [--output-format zip]` writes them under
   * `target/lambda` (the functions are arm64, `provided.al2023`). A zip is uploaded as it is;
   * otherwise the folder is zipped.
   */
  readonly codeDirectory: string;
  /** @default - the template's defaults */
  readonly parameters?: BatchOpsParameters;
  /**
   * The SAM template to include.
   * @default - infra/template.yaml beside this package in the repository, or, for the package
   * installed elsewhere, the copy its build carries
   */
  readonly templateFile?: string;
}

/** The output of the template whose value is the custom-resource function's ARN. */
export const SERVICE_TOKEN_OUTPUT = 'BatchopsJobServiceToken';

const SERVERLESS_FUNCTION = 'AWS::Serverless::Function';

/**
 * The batchops stack: queues, table, specs bucket, API, the functions, alarms and dashboard,
 * as infra/template.yaml declares them, with logical IDs kept. Put it in a stack of its own
 * or beside your resources; one per account and Region (the specs bucket's name is fixed).
 */
export class BatchOps extends Construct {
  /** The included template: `include.getResource('JobsTable')` and the like for escape hatches. */
  public readonly include: CfnInclude;
  /** The code asset of each `AWS::Serverless::Function`, by its logical ID. */
  public readonly functionCode: Readonly<Record<string, Asset>>;
  private readonly template: Template;
  private readonly templateFile: string;
  private readonly parameters: Readonly<Record<string, string | number>>;

  constructor(scope: Construct, id: string, props: BatchOpsProps) {
    super(scope, id);
    const templateFile = (this.templateFile = props.templateFile ?? defaultTemplateFile());
    const template = (this.template = readTemplate(templateFile));
    const parameters = (this.parameters = checkedParameters(template, templateFile, props.parameters ?? {}));
    const dehydrated = transformReferences(template);
    this.include = new CfnInclude(this, 'Template', {
      templateFile,
      parameters,
      dehydratedResources: [...dehydrated.keys()],
    });
    for (const logicalId of dehydrated.keys()) {
      this.hydrate(template, logicalId, parameters);
    }
    const code: Record<string, Asset> = {};
    for (const [logicalId, resource] of Object.entries(template.Resources)) {
      if (resource.Type === SERVERLESS_FUNCTION) {
        code[logicalId] = this.attachCode(logicalId, binaryOf(logicalId, resource.Metadata), props.codeDirectory);
      }
    }
    this.functionCode = code;
  }

  /** The API's URL (output `ApiUrl`, AWS_IAM auth): `batchops --api-url`. */
  public get apiUrl(): string {
    return this.output('ApiUrl');
  }

  /** The specs bucket's name (output `SpecsBucket`): job specs uploaded under jobs/ start jobs. */
  public get specsBucket(): string {
    return this.output('SpecsBucket');
  }

  /**
   * The ARN of the function behind `Custom::BatchopsJob` (output `BatchopsJobServiceToken`,
   * exported as `<stack name>-BatchopsJobServiceToken`): the `ServiceToken` of a `BatchopsJob`.
   */
  public get serviceToken(): string {
    return this.output(SERVICE_TOKEN_OUTPUT);
  }

  /**
   * The value of one of the template's outputs, by its name (`ExampleJobRoleArn`,
   * `AlarmTopic` ...), for this stack or any other of the app.
   */
  public output(name: string): string {
    const written = this.template.Outputs?.[name];
    if (written === undefined) {
      throw new Error(`BatchOps: ${this.templateFile} has no output ${name}`);
    }
    // CDK exports a Ref or GetAtt that another stack uses and imports it there, but not an
    // Fn::Sub (it would export the text "${JobsApi}"): a Sub becomes a Join of references.
    const sub = (written.Value as Record<string, unknown> | undefined)?.['Fn::Sub'];
    if (typeof sub === 'string') {
      const parts = splitSub(sub).map((part) => (part.name === undefined ? part.text! : this.subValue(part.name)));
      return Fn.join('', parts);
    }
    return this.include.getOutput(name).value;
  }

  /** What `${name}` of an `Fn::Sub` in the template stands for, as a reference. */
  private subValue(name: string): string {
    const stack = Stack.of(this);
    const pseudo: Record<string, string> = {
      'AWS::AccountId': stack.account,
      'AWS::Region': stack.region,
      'AWS::Partition': stack.partition,
      'AWS::URLSuffix': stack.urlSuffix,
      'AWS::StackName': stack.stackName,
      'AWS::StackId': stack.stackId,
    };
    if (name.startsWith('AWS::')) {
      if (!(name in pseudo)) {
        throw new Error(`BatchOps: an output of ${this.templateFile} names \${${name}}, which means nothing outside its stack`);
      }
      return pseudo[name];
    }
    const dot = name.indexOf('.');
    if (dot !== -1) {
      return this.include.getResource(name.slice(0, dot)).getAtt(name.slice(dot + 1)).toString();
    }
    if (name in this.parameters) {
      return String(this.parameters[name]);
    }
    if (this.template.Parameters?.[name] !== undefined) {
      return this.include.getParameter(name).valueAsString;
    }
    return this.include.getResource(name).ref;
  }

  /**
   * What `CfnInclude` leaves out of a dehydrated resource (included as written): its logical
   * ID as written, the parameter values put in place elsewhere, its `Condition` and `DependsOn`.
   */
  private hydrate(template: Template, logicalId: string, parameters: Record<string, string | number>): void {
    const written = template.Resources[logicalId];
    const resource = this.include.getResource(logicalId);
    resource.overrideLogicalId(logicalId);
    if (written.Properties !== undefined) {
      for (const [name, value] of Object.entries(written.Properties)) {
        resource.addPropertyOverride(name, replaceParameters(value, parameters));
      }
    }
    if (written.Condition !== undefined) {
      resource.cfnOptions.condition = this.include.getCondition(written.Condition);
    }
    if (written.DependsOn !== undefined) {
      resource.addOverride('DependsOn', written.DependsOn);
    }
  }

  private attachCode(logicalId: string, binary: string, codeDirectory: string): Asset {
    const asset = new Asset(this, `${logicalId}Code`, { path: binaryCode(codeDirectory, binary, logicalId) });
    const fn = this.include.getResource(logicalId);
    fn.addPropertyOverride('CodeUri', { Bucket: asset.s3BucketName, Key: asset.s3ObjectKey });
    // For `sam local invoke` on the synthesized template (aws:asset:path metadata).
    asset.addResourceMetadata(fn, 'CodeUri');
    return asset;
  }
}

/** The values for `CfnInclude`: strings as a `Ref` of the parameter gives them, tokens as they are. */
function checkedParameters(
  template: Template,
  templateFile: string,
  values: BatchOpsParameters,
): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) {
      continue;
    }
    const declared = template.Parameters?.[name];
    if (declared === undefined) {
      throw new Error(`BatchOps parameter ${name}: ${templateFile} declares no such parameter`);
    }
    out[name] = checkParameter(name, declared, value);
  }
  return out;
}

/** The binary `sam build` would build for the function: its `Metadata.BuildProperties.Binary`. */
function binaryOf(logicalId: string, metadata: Record<string, unknown> | undefined): string {
  const binary = (metadata?.BuildProperties as { Binary?: unknown } | undefined)?.Binary;
  if (typeof binary !== 'string' || binary === '') {
    throw new Error(
      `BatchOps: ${logicalId} has no Metadata.BuildProperties.Binary, so there is no telling which binary is its code`,
    );
  }
  return binary;
}

/** infra/template.yaml inside the repository; the package's own copy once installed elsewhere. */
export function defaultTemplateFile(): string {
  const packageRoot = path.resolve(__dirname, '..', '..');
  const installed = packageRoot.split(path.sep).includes('node_modules');
  const file = installed ? path.join(packageRoot, 'template.yaml') : path.join(packageRoot, '..', 'template.yaml');
  if (!fs.existsSync(file)) {
    throw new Error(
      `BatchOps: no template at ${file}` + (installed ? ' (the package was installed without running its build)' : ''),
    );
  }
  return file;
}

/** `<codeDirectory>/<binary>/bootstrap.zip` if there is one, else the folder holding `bootstrap`. */
function binaryCode(codeDirectory: string, binary: string, logicalId: string): string {
  const folder = path.resolve(codeDirectory, binary);
  const zip = path.join(folder, 'bootstrap.zip');
  if (fs.existsSync(zip)) {
    return zip;
  }
  if (fs.existsSync(path.join(folder, 'bootstrap'))) {
    return folder;
  }
  throw new Error(
    `BatchOps: ${logicalId} runs binary ${binary}, but ${folder} holds neither bootstrap.zip nor bootstrap ` +
      `(cargo lambda build --release --arm64 --output-format zip writes them under target/lambda)`,
  );
}
