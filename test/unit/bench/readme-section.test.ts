/** spliceBenchSection: the bench report replaces exactly the README's marked section. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BENCH_BEGIN, BENCH_END, spliceBenchSection } from '../../../scripts/bench/readme-section.js';
import { benchSettings } from '../../../scripts/bench/settings.js';

const readme = `# tool\n\n## Performance\n\n${BENCH_BEGIN}\nold figures\n${BENCH_END}\n\n## Development\nkeep\n`;
const report = '## Benchmark\n\nText [docs](https://x.test/a) and [top](#ceilings).\n\n### Ceilings\n\n| a |\n\n![plot](throughput.svg)\n';

test('replaces only the marked section, demotes headings, rebases relative links', () => {
  const out = spliceBenchSection(readme, report, 'docs/bench');
  assert.ok(out.startsWith('# tool\n\n## Performance\n\n<!-- bench:begin -->\n### Benchmark\n'));
  assert.ok(out.endsWith(`${BENCH_END}\n\n## Development\nkeep\n`));
  assert.ok(!out.includes('old figures'));
  assert.match(out, /\n#### Ceilings\n/);
  assert.match(out, /!\[plot\]\(docs\/bench\/throughput\.svg\)/);
  assert.match(out, /\[docs\]\(https:\/\/x\.test\/a\)/, 'absolute links untouched');
  assert.match(out, /\[top\]\(#ceilings\)/, 'anchors untouched');
  // Idempotent on a second run: the same report gives the same README.
  assert.equal(spliceBenchSection(out, report, 'docs/bench'), out);
});

test('a README without the markers is an error', () => {
  assert.throws(() => spliceBenchSection('# tool\n', report, 'docs/bench'), /markers/);
  assert.throws(() => spliceBenchSection(`${BENCH_END}\n${BENCH_BEGIN}\n`, report, 'docs/bench'), /markers/);
});

test('only the full default run refreshes the README', () => {
  assert.equal(benchSettings({}, '/r').updateReadme, true);
  assert.equal(benchSettings({ BENCH_QUICK: '1' }, '/r').updateReadme, false);
  assert.equal(benchSettings({ BENCH_SIZE_MIB: '1024' }, '/r').updateReadme, false);
  assert.equal(benchSettings({ BENCH_OUT: '/tmp/o' }, '/r').updateReadme, false);
});
