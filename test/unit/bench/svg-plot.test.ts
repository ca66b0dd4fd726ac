import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { niceTicks, renderLinePlot, escapeXml } from '../../../scripts/bench/svg-plot.js';

describe('SVG plot', () => {
  test('niceTicks covers the range with round steps', () => {
    assert.deepEqual(niceTicks(0, 100, 5), [0, 20, 40, 60, 80, 100]);
    assert.deepEqual(niceTicks(0, 520, 6), [0, 100, 200, 300, 400, 500, 600]);
    assert.deepEqual(niceTicks(0, 1, 4), [0, 0.25, 0.5, 0.75, 1]);
    const t = niceTicks(3, 3);
    assert.ok(t[0]! <= 3 && t[t.length - 1]! >= 3 && t.length >= 2);
    assert.deepEqual(niceTicks(NaN, 1), []);
  });

  test('renders one polyline per series, markers, dashed lines and an escaped legend', () => {
    const svg = renderLinePlot({
      title: 'cold & warm',
      xLabel: 'latency (ms)',
      yLabel: 'MB/s',
      series: [
        { name: 'cold <ebsmount>', color: '#1f77b4', markers: true, labels: true, points: [{ x: 0, y: 300 }, { x: 20, y: 280 }, { x: 100, y: 250 }] },
        { name: 'ceiling', color: '#888', dashed: true, points: [{ x: 0, y: 524 }, { x: 100, y: 335 }] },
        { name: 'broken', color: '#000', points: [{ x: NaN, y: 1 }, { x: 1, y: Infinity }] },
      ],
    });
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
    assert.ok(svg.trimEnd().endsWith('</svg>'));
    assert.equal(svg.match(/<polyline /g)!.length, 2);
    assert.equal(svg.match(/<circle /g)!.length, 3);
    assert.equal(svg.match(/stroke-dasharray/g)!.length, 2); // the ceiling line and its legend entry
    assert.match(svg, /cold &amp; warm/);
    assert.match(svg, /cold &lt;ebsmount&gt;/);
    assert.doesNotMatch(svg, /NaN|Infinity/);
    // The highest point is drawn above (smaller y than) the lowest one.
    const ys = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
    assert.ok(ys[0]! < ys[2]!);
  });

  test('escapeXml escapes the five XML specials', () => {
    assert.equal(escapeXml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
  });
});
