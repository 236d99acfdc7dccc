/**
 * Reading infra/template.yaml as `BatchOps` needs it besides `CfnInclude`: the parameters'
 * declarations (to check values put in their place), the functions' binaries, and the
 * references to resources that only the SAM transform creates.
 *
 * SAM makes resources the template does not declare, such as `<Function>Role` for a function
 * without a `Role`, and the template may reference them (`ExampleJobRole` trusts
 * `!GetAtt JobIntakeFunctionRole.Arn`). `CfnInclude` refuses a reference it cannot resolve,
 * so a resource holding one is included "dehydrated", as written, and the parameter values
 * `CfnInclude` puts in place everywhere else are put into it here.
 */
import * as fs from 'node:fs';
import { Token } from 'aws-cdk-lib';
import * as YAML from 'yaml';

export interface TemplateResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly Metadata?: Record<string, unknown>;
  readonly Condition?: string;
  readonly DependsOn?: string | string[];
}

export interface ParameterDeclaration {
  readonly Type: string;
  readonly Default?: unknown;
  readonly MinValue?: number | string;
  readonly MaxValue?: number | string;
  readonly MinLength?: number | string;
  readonly MaxLength?: number | string;
  readonly AllowedValues?: unknown[];
  readonly AllowedPattern?: string;
}

export interface Template {
  readonly Parameters?: Record<string, ParameterDeclaration>;
  readonly Resources: Record<string, TemplateResource>;
  readonly Outputs?: Record<string, { readonly Value: unknown }>;
}

/** The CloudFormation short forms (`!Ref`, `!GetAtt`, `!Sub` ...) as their long forms. */
const SHORT_FORMS = [
  'Ref', 'Condition', 'GetAtt', 'Sub', 'Join', 'Select', 'Split', 'If', 'Not', 'Equals', 'And', 'Or',
  'FindInMap', 'Base64', 'Cidr', 'ImportValue', 'GetAZs', 'Transform', 'Length', 'ToJsonString',
];

function longForm(name: string, value: unknown): Record<string, unknown> {
  if (name === 'Ref' || name === 'Condition') {
    return { [name]: value };
  }
  // `!GetAtt Resource.Attribute` is `Fn::GetAtt: [Resource, Attribute]`.
  if (name === 'GetAtt' && typeof value === 'string' && value.includes('.')) {
    const dot = value.indexOf('.');
    return { 'Fn::GetAtt': [value.slice(0, dot), value.slice(dot + 1)] };
  }
  return { [`Fn::${name}`]: value };
}

const CFN_TAGS: YAML.Tags = SHORT_FORMS.flatMap((name): YAML.Tags => [
  { tag: `!${name}`, resolve: (value: string) => longForm(name, value) },
  {
    tag: `!${name}`,
    collection: 'seq',
    resolve: (seq: YAML.YAMLSeq) => longForm(name, seq.toJSON()),
  } as YAML.CollectionTag,
  {
    tag: `!${name}`,
    collection: 'map',
    resolve: (map: YAML.YAMLMap) => longForm(name, map.toJSON()),
  } as YAML.CollectionTag,
]);

export function readTemplate(file: string): Template {
  const text = fs.readFileSync(file, 'utf8');
  const template = (file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text, { customTags: CFN_TAGS })) as Template;
  if (template?.Resources === undefined) {
    throw new Error(`BatchOps: ${file} is not a CloudFormation template (no Resources)`);
  }
  return template;
}

/** The logical IDs a value references: `Ref`, `Fn::GetAtt`, and `${Name}` in `Fn::Sub`. */
function references(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) {
    value.forEach((v) => references(v, out));
  } else if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    const [key, arg] = entries.length === 1 ? entries[0] : [undefined, undefined];
    if (key === 'Ref' && typeof arg === 'string') {
      out.add(arg);
    } else if (key === 'Fn::GetAtt') {
      const target = Array.isArray(arg) ? arg[0] : String(arg).split('.')[0];
      if (typeof target === 'string') {
        out.add(target);
      }
    } else if (key === 'Fn::Sub') {
      const [text, variables] = Array.isArray(arg) ? [arg[0], arg[1] ?? {}] : [arg, {}];
      for (const name of subNames(String(text))) {
        if (!(name in variables)) {
          out.add(name.split('.')[0]);
        }
      }
      references(variables, out);
    } else {
      entries.forEach(([, v]) => references(v, out));
    }
  }
  return out;
}

/** The names `${Name}` or `${Name.Attribute}` of an `Fn::Sub` string (not `${!Literal}`). */
function subNames(text: string): string[] {
  return splitSub(text).flatMap((part) => (part.name === undefined ? [] : [part.name]));
}

/** An `Fn::Sub` string as its literal text and its `${Name}`s, in order. */
export function splitSub(text: string): { text?: string; name?: string }[] {
  const parts: { text?: string; name?: string }[] = [];
  let last = 0;
  for (const m of text.matchAll(/\$\{([^}]*)\}/g)) {
    parts.push({ text: text.slice(last, m.index) });
    // `${!Literal}` is the text `${Literal}`.
    parts.push(m[1].startsWith('!') ? { text: `\${${m[1].slice(1)}}` } : { name: m[1].trim() });
    last = m.index! + m[0].length;
  }
  parts.push({ text: text.slice(last) });
  return parts.filter((p) => p.name !== undefined || p.text !== '');
}

/**
 * The resources referencing a logical ID the template does not declare (not a resource, not a
 * parameter, not a pseudo parameter): those SAM creates. Each maps to the IDs it references.
 */
export function transformReferences(template: Template): Map<string, string[]> {
  const declared = new Set([...Object.keys(template.Resources), ...Object.keys(template.Parameters ?? {})]);
  const out = new Map<string, string[]>();
  for (const [logicalId, resource] of Object.entries(template.Resources)) {
    const dependsOn = resource.DependsOn === undefined ? [] : [resource.DependsOn].flat();
    const missing = [...references(resource), ...dependsOn].filter(
      (id) => !declared.has(id) && !id.startsWith('AWS::'),
    );
    if (missing.length > 0) {
      out.set(logicalId, [...new Set(missing)]);
    }
  }
  return out;
}

/**
 * A value with the given parameters put in place, as `CfnInclude` does it: `{Ref: Name}` is the
 * value, and an `Fn::Sub` naming `${Name}` gets it in its variable map (which holds tokens as
 * well as plain values).
 */
export function replaceParameters(value: unknown, values: Readonly<Record<string, unknown>>): unknown {
  if (Array.isArray(value)) {
    return value.map((v) => replaceParameters(v, values));
  }
  if (value === null || typeof value !== 'object') {
    return value;
  }
  const entries = Object.entries(value);
  if (entries.length === 1) {
    const [key, arg] = entries[0];
    if (key === 'Ref' && typeof arg === 'string' && arg in values) {
      return values[arg];
    }
    if (key === 'Fn::Sub') {
      const [text, variables] = Array.isArray(arg) ? [arg[0], arg[1] ?? {}] : [arg, {}];
      const given = subNames(String(text)).filter((name) => name in values && !(name in variables));
      const map = { ...(replaceParameters(variables, values) as object) };
      for (const name of given) {
        Object.assign(map, { [name]: values[name] });
      }
      return Object.keys(map).length === 0 ? { 'Fn::Sub': text } : { 'Fn::Sub': [text, map] };
    }
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, replaceParameters(v, values)]));
}

/**
 * The value as a `Ref` of the parameter gives it (a string), or an error naming the constraint
 * it breaks: CloudFormation checks a parameter, but not a value `CfnInclude` put in its place.
 * A token (a parameter of your own stack, say) is left for CloudFormation to resolve.
 */
export function checkParameter(name: string, declared: ParameterDeclaration, value: string | number): string | number {
  if (Token.isUnresolved(value)) {
    return value;
  }
  const fail = (why: string): never => {
    throw new Error(`BatchOps parameter ${name}: ${JSON.stringify(value)} ${why}`);
  };
  const limit = (v: number | string | undefined) => (v === undefined ? undefined : Number(v));
  const text = String(value);
  const allowed = declared.AllowedValues;
  if (declared.Type === 'Number') {
    const n = typeof value === 'number' ? value : text.trim() === '' ? NaN : Number(text);
    const [min, max] = [limit(declared.MinValue), limit(declared.MaxValue)];
    if (!Number.isFinite(n)) {
      fail('is not a number');
    }
    if (min !== undefined && n < min) {
      fail(`is below the template's MinValue ${min}`);
    }
    if (max !== undefined && n > max) {
      fail(`is above the template's MaxValue ${max}`);
    }
    if (allowed !== undefined && !allowed.some((a) => Number(a) === n)) {
      fail(`is not one of the template's AllowedValues ${allowed.join(', ')}`);
    }
    return String(n);
  }
  if (typeof value !== 'string') {
    fail(`is not a string (the template declares ${name} as ${declared.Type})`);
  }
  const [minLength, maxLength] = [limit(declared.MinLength), limit(declared.MaxLength)];
  if (minLength !== undefined && text.length < minLength) {
    fail(`is shorter than the template's MinLength ${minLength}`);
  }
  if (maxLength !== undefined && text.length > maxLength) {
    fail(`is longer than the template's MaxLength ${maxLength}`);
  }
  if (allowed !== undefined && !allowed.map(String).includes(text)) {
    fail(`is not one of the template's AllowedValues ${allowed.join(', ')}`);
  }
  // CloudFormation matches AllowedPattern against the whole value.
  if (declared.AllowedPattern !== undefined && !new RegExp(`^(?:${declared.AllowedPattern})$`).test(text)) {
    fail(`does not match the template's AllowedPattern ${declared.AllowedPattern}`);
  }
  return text;
}
