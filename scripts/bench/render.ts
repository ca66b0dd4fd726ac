#!/usr/bin/env node
/**
 * Re-renders results.md and throughput.svg from a results.json of `npm run bench` (after a change
 * to report.ts; the figures are the run's own):
 *   node dist/scripts/bench/render.js [DIR]   (default docs/bench)
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchResults } from './results.js';
import { renderMarkdown, renderThroughputPlot } from './report.js';

const dir = process.argv[2] ?? 'docs/bench';
const r = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')) as BenchResults;
const s = r.settings as { rateLimitPerSnapshot?: number; maxConcurrency?: number };
await writeFile(join(dir, 'results.md'), renderMarkdown(r));
await writeFile(join(dir, 'throughput.svg'), renderThroughputPlot(r, { rateLimit: s.rateLimitPerSnapshot ?? 1000, maxConcurrency: s.maxConcurrency ?? 64 }));
process.stdout.write(`wrote ${dir}/results.md and throughput.svg\n`);
