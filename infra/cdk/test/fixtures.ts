/**
 * What the tests build on: a code folder of placeholder binaries (synthesis stages them as
 * assets and never runs them), and an app whose cloud assembly goes to a temporary folder.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';

/** infra/template.yaml, read as text: the tests take what they expect from it. */
export const TEMPLATE_FILE = path.resolve(__dirname, '..', '..', '..', 'template.yaml');
export const TEMPLATE_TEXT = fs.readFileSync(TEMPLATE_FILE, 'utf8');

/** Every binary the template's functions name (`BuildProperties: { Binary: ... }`). */
export const BINARIES = [...TEMPLATE_TEXT.matchAll(/Binary:\s*([\w-]+)/g)].map((m) => m[1]);

const made: string[] = [];
process.on('exit', () => made.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

/** A new folder under the system's temporary one, removed when the test process ends. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `batchops-cdk-${prefix}-`));
  made.push(dir);
  return dir;
}

/** A folder like target/lambda: `<binary>/bootstrap` for each binary, each saying whose it is. */
export function placeholderCode(binaries: readonly string[] = BINARIES): string {
  const dir = tempDir('code');
  for (const binary of binaries) {
    fs.mkdirSync(path.join(dir, binary));
    fs.writeFileSync(path.join(dir, binary, 'bootstrap'), placeholder(binary), { mode: 0o755 });
  }
  return dir;
}

export function placeholder(binary: string): string {
  return `#!/bin/sh\n# placeholder for ${binary}: synthesis needs a file, not the binary\n`;
}

/** An app writing its cloud assembly to a folder of its own. */
export function testApp(): App {
  return new App({ outdir: tempDir('cdk.out') });
}

/** `[resource, attribute]` of an `Fn::GetAtt` in either of its forms. */
export function getAtt(value: any): string[] {
  const arg = value?.['Fn::GetAtt'];
  assert.ok(arg !== undefined, `not an Fn::GetAtt: ${JSON.stringify(value)}`);
  return typeof arg === 'string' ? [arg.slice(0, arg.indexOf('.')), arg.slice(arg.indexOf('.') + 1)] : arg;
}
