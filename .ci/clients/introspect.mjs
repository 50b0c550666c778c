// graphql-js (the reference implementation) as a stock client sees the live
// schema, compared with the committed schema.graphql.
//
//   node introspect.mjs http://127.0.0.1:PORT/graphql path/to/schema.graphql
//
// 1. POSTs getIntrospectionQuery() with every option on (descriptions,
//    specifiedByUrl, directiveIsRepeatable, schemaDescription,
//    inputValueDeprecation), as GraphiQL does, builds the client schema and
//    requires printSchema() of it, plus one trailing newline (printSchema ends
//    without one, a file ends with one), to equal schema.graphql byte for byte;
//    and __schema.description must not be the __Schema meta-type's own text.
// 2. POSTs the default getIntrospectionQuery(): printSchema() of it must equal
//    what graphql-js itself gets by running that same query on schema.graphql
//    (the committed SDL minus what the default query does not ask for, such as
//    @specifiedBy).
// 3. Runs `graphql-inspector introspect` on the endpoint and requires the SDL it
//    writes to describe the same schema as step 2's view of schema.graphql (its
//    introspection asks for no more than the default query does; both sides
//    sorted and printed by graphql-js, since the inspector has its own layout).
// Prints `ok ...`/`FAIL ...` per check with a unified diff on a mismatch, and
// exits 1 if any check failed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  graphqlSync,
  lexicographicSortSchema,
  printSchema,
  version,
} from 'graphql';

const [url, schemaPath] = process.argv.slice(2);
if (!url || !schemaPath) {
  console.error('usage: node introspect.mjs <graphql-url> <schema.graphql>');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'introspect-'));
const committed = readFileSync(schemaPath, 'utf8');
const FULL = {
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
};
let failed = 0;
const ok = (msg) => console.log(`ok   ${msg}`);
const fail = (msg) => {
  console.log(`FAIL ${msg}`);
  failed += 1;
};

function unifiedDiff(expected, actual, expectedLabel, actualLabel) {
  const a = join(work, 'expected.graphql');
  const b = join(work, 'actual.graphql');
  writeFileSync(a, expected);
  writeFileSync(b, actual);
  const r = spawnSync('diff', ['-u', '--label', expectedLabel, '--label', actualLabel, a, b], {
    encoding: 'utf8',
  });
  return r.stdout || r.stderr || '(diff printed nothing)';
}

// What a stock client sends: a JSON POST naming the operation, accepting the
// GraphQL response media type first.
async function post(query) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
    },
    body: JSON.stringify({ query, operationName: 'IntrospectionQuery' }),
  });
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`HTTP ${res.status}, not JSON: ${text.slice(0, 300)}`);
  }
  if (body.errors?.length || !body.data) {
    throw new Error(`HTTP ${res.status}, errors: ${JSON.stringify(body.errors ?? body).slice(0, 500)}`);
  }
  return body.data;
}

function compare(what, expected, actual, expectedLabel) {
  if (actual === expected) {
    ok(`${what}: printSchema equals ${expectedLabel} (${actual.length} bytes)`);
  } else {
    fail(`${what}: printSchema differs from ${expectedLabel}`);
    console.log(unifiedDiff(expected, actual, expectedLabel, `live ${what}`));
  }
}

console.log(`graphql-js ${version} against ${url}`);

// 1. Every option on.
try {
  const data = await post(getIntrospectionQuery(FULL));
  // __schema.description is the schema's own description (null when it has
  // none), not the description of the __Schema meta-type.
  const own = data.__schema.description;
  const meta = data.__schema.types.find((t) => t.name === '__Schema')?.description;
  const words = (s) => (s ?? '').split(/\s+/).join(' ').trim();
  if (own != null && words(own) === words(meta)) {
    fail(`full introspection: __schema.description is the __Schema meta-type's description: ${JSON.stringify(own)}`);
  } else {
    ok(`full introspection: __schema.description is ${JSON.stringify(own)}`);
  }
  const printed = `${printSchema(buildClientSchema(data))}\n`;
  compare('full introspection', committed, printed, schemaPath);
} catch (err) {
  fail(`full introspection: ${err.message}`);
}

// 2. The default query, against graphql-js's own answer on the committed SDL.
let committedSchema;
let committedDefault; // schema.graphql as the default introspection query sees it
try {
  committedSchema = buildSchema(committed);
  const local = graphqlSync({ schema: committedSchema, source: getIntrospectionQuery() });
  if (local.errors?.length) throw new Error(local.errors.map((e) => e.message).join('; '));
  committedDefault = buildClientSchema(local.data);
} catch (err) {
  fail(`${schemaPath} does not build with graphql-js: ${err.message}`);
}
try {
  const data = await post(getIntrospectionQuery());
  const printed = printSchema(buildClientSchema(data));
  if (committedDefault) {
    const expected = printSchema(committedDefault);
    compare('default introspection', expected, printed, `${schemaPath} seen through the default query`);
  }
} catch (err) {
  fail(`default introspection: ${err.message}`);
}

// 3. graphql-inspector.
const inspector = join(here, 'node_modules', '.bin', 'graphql-inspector');
const out = join(work, 'inspector.graphql');
const started = Date.now();
const r = spawnSync(inspector, ['introspect', url, '--write', out], {
  encoding: 'utf8',
  timeout: 120_000,
  env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
});
const seconds = ((Date.now() - started) / 1000).toFixed(1);
if (r.error || r.status !== 0) {
  fail(
    `graphql-inspector introspect exited ${r.status ?? r.error?.message} after ${seconds} s:\n` +
      `${r.stdout ?? ''}${r.stderr ?? ''}`.trim(),
  );
} else if (committedDefault) {
  try {
    const norm = (s) => printSchema(lexicographicSortSchema(s));
    compare(
      'graphql-inspector introspect (sorted)',
      norm(committedDefault),
      norm(buildSchema(readFileSync(out, 'utf8'))),
      `${schemaPath} seen through the default query (sorted)`,
    );
    console.log(`     graphql-inspector took ${seconds} s`);
  } catch (err) {
    fail(`graphql-inspector wrote SDL graphql-js cannot build: ${err.message}`);
  }
}

rmSync(work, { recursive: true, force: true });
console.log(`introspect: ${failed === 0 ? 'all checks passed' : `${failed} check(s) failed`}`);
process.exit(failed === 0 ? 0 : 1);
