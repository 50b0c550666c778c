// The GraphQL-over-HTTP conformance audit of graphql-http (the spec's own audit
// suite) against a live endpoint.
//
//   node audit.mjs http://127.0.0.1:PORT/graphql
//
// Prints every result that is not `ok` (id, requirement level, name, reason and
// the answer's status/content type), then the counts per status. Exits 1 unless
// there are no `error` and no `warn` results (a `notice` is informational: the
// spec's MAY items). Exits 2 if the audit itself could not run.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql-url>');
  process.exit(2);
}

let results;
try {
  results = await auditServer({ url });
} catch (err) {
  console.error(`audit: could not run against ${url}: ${err?.stack ?? err}`);
  process.exit(2);
}

const counts = { ok: 0, warn: 0, error: 0, notice: 0 };
for (const r of results) {
  counts[r.status] = (counts[r.status] ?? 0) + 1;
  if (r.status === 'ok') continue;
  let answer = '';
  const res = r.response;
  if (res) {
    answer = `HTTP ${res.status}, content-type ${res.headers.get('content-type') ?? '(none)'}`;
    try {
      if (!res.bodyUsed) answer += `, body ${JSON.stringify((await res.text()).slice(0, 200))}`;
    } catch {
      // the audit already read the body; status and type are enough
    }
  }
  console.log(`${r.status.toUpperCase().padEnd(6)} ${r.id} ${r.name}`);
  console.log(`       reason: ${r.reason}`);
  if (answer) console.log(`       answer: ${answer}`);
}
console.log(
  `graphql-http audit of ${url}: ${results.length} audits, ` +
    `${counts.ok} ok, ${counts.warn} warn, ${counts.error} error, ${counts.notice} notice`,
);
process.exit(counts.error === 0 && counts.warn === 0 ? 0 : 1);
