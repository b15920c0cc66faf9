// Lints an AsyncAPI document with the official parser (@asyncapi/parser,
// pinned in package.json): structure against the AsyncAPI 3.0 schema, the
// payload schemas, references (openapi.yaml's included) and the parser's
// Spectral rules. Any error fails; warnings are printed and fail too, so
// that the document stays clean.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Parser, fromFile, DiagnosticSeverity } from '@asyncapi/parser';

const file = process.argv[2];
if (!file) {
  console.error('usage: node asyncapi-lint.mjs <asyncapi.yaml>');
  process.exit(2);
}
await readFile(file); // a clear error when the path is wrong
const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, resolve(file)).parse({
  source: pathToFileURL(resolve(file)).href,
});
const shown = diagnostics.filter((d) => d.severity <= DiagnosticSeverity.Warning);
for (const d of shown) {
  const level = d.severity === DiagnosticSeverity.Error ? 'error' : 'warning';
  console.log(`${level} ${d.code}: ${d.message} at #/${d.path.join('/')}`);
}
if (!document || shown.length > 0) {
  console.log(`${file}: ${shown.length} problem(s)`);
  process.exit(1);
}
console.log(`${file}: valid AsyncAPI ${document.version()}, ${document.channels().length} channels, ${document.operations().length} operations, ${document.components().messages().length} messages`);
