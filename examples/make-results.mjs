// Builds the results table (markdown) from the --json files of the example runs:
//   node examples/make-results.mjs examples/results/*.json > table.md
import { readFileSync } from 'node:fs';

const pct = (m) => /accuracy|precision|recall|f1|error rate/i.test(m);
const fmt = (metric, v) => (v === undefined || v === null ? '-' : pct(metric) ? `${(100 * v).toFixed(1)}%` : Math.abs(v) >= 100 ? v.toFixed(1) : Number(v.toPrecision(3)).toString());
const commands = JSON.parse(process.env.COMMANDS ?? '{}');

const lines = ['| task | model | metric | value | baseline | time | command |', '| --- | --- | --- | --- | --- | --- | --- |'];
for (const file of process.argv.slice(2)) {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  const cmd = commands[r.name] ?? `rnnkit example ${r.name} --json ${file}`;
  for (const row of r.rows) {
    if (/majority class/.test(row.model)) continue;
    const base = row.baseline === undefined ? '-' : `${fmt(row.metric, row.baseline)} (${row.baselineName ?? 'baseline'})`;
    lines.push(`| ${row.task} | ${row.model} | ${row.metric} | ${fmt(row.metric, row.value)} | ${base} | ${Math.round(row.seconds)} s (run ${Math.round(r.seconds)} s, ${r.backend}) | \`${cmd}\` |`);
  }
}
process.stdout.write(lines.join('\n') + '\n');
