/**
 * A small line plot as standalone SVG text (no dependencies): axes with "nice" ticks and a grid,
 * one polyline per series (solid or dashed, with optional point markers and value labels), and a
 * legend. Pure: same input, same string. Text is XML-escaped; non-finite points are skipped.
 */

export interface PlotPoint {
  x: number;
  y: number;
}

export interface PlotSeries {
  name: string;
  points: PlotPoint[];
  color: string;
  dashed?: boolean;
  markers?: boolean;
  /** Print each point's y value next to its marker. */
  labels?: boolean;
}

export interface PlotSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: PlotSeries[];
  width?: number;
  height?: number;
}

/** Round tick values (1, 2, 2.5, 5 × 10^n steps) covering [min, max], about `count` of them. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max < min) [min, max] = [max, min];
  if (max === min) max = min === 0 ? 1 : min + Math.abs(min);
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const first = Math.floor(min / step) * step;
  const ticks: number[] = [];
  for (let v = first; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

function fmt(n: number): string {
  return Number(n.toFixed(1)).toString();
}

function label(v: number): string {
  return Math.abs(v) >= 100 ? String(Math.round(v)) : String(Number(v.toPrecision(3)));
}

export function renderLinePlot(spec: PlotSpec): string {
  const width = spec.width ?? 760;
  const height = spec.height ?? 460;
  const margin = { left: 72, right: 24, top: 48, bottom: 56 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const series = spec.series.map((s) => ({ ...s, points: s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)) }));
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p.x);
  const ys = all.map((p) => p.y);
  const xTicks = niceTicks(xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1, 6);
  const yTicks = niceTicks(0, ys.length ? Math.max(...ys) * 1.08 : 1, 6);
  const x0 = xTicks[0]!;
  const x1 = xTicks[xTicks.length - 1]!;
  const y0 = yTicks[0]!;
  const y1 = yTicks[yTicks.length - 1]!;
  const px = (x: number): number => margin.left + ((x - x0) / (x1 - x0)) * plotW;
  const py = (y: number): number => margin.top + plotH - ((y - y0) / (y1 - y0)) * plotH;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`);
  for (const t of yTicks) {
    out.push(`<line x1="${margin.left}" y1="${fmt(py(t))}" x2="${margin.left + plotW}" y2="${fmt(py(t))}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${margin.left - 8}" y="${fmt(py(t) + 4)}" text-anchor="end">${label(t)}</text>`);
  }
  for (const t of xTicks) {
    out.push(`<line x1="${fmt(px(t))}" y1="${margin.top}" x2="${fmt(px(t))}" y2="${margin.top + plotH}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${fmt(px(t))}" y="${margin.top + plotH + 18}" text-anchor="middle">${label(t)}</text>`);
  }
  out.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`);
  out.push(`<text x="${margin.left + plotW / 2}" y="${height - 14}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(spec.yLabel)}</text>`);

  for (const s of series) {
    if (s.points.length === 0) continue;
    const pts = s.points.map((p) => `${fmt(px(p.x))},${fmt(py(p.y))}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    if (s.markers) {
      for (const p of s.points) {
        out.push(`<circle cx="${fmt(px(p.x))}" cy="${fmt(py(p.y))}" r="4" fill="${s.color}"/>`);
        if (s.labels) out.push(`<text x="${fmt(px(p.x) + 6)}" y="${fmt(py(p.y) - 6)}" fill="${s.color}">${label(p.y)}</text>`);
      }
    }
  }

  const legendX = margin.left + plotW - 250;
  // Bottom right: rates sit well above zero, so that corner is usually empty.
  const legendTop = margin.top + plotH - series.length * 18 - 12;
  out.push(`<rect x="${legendX - 8}" y="${legendTop}" width="254" height="${series.length * 18 + 8}" fill="#ffffff" fill-opacity="0.85" stroke="#cccccc"/>`);
  series.forEach((s, i) => {
    const y = legendTop + 12 + i * 18;
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(`<line x1="${legendX}" y1="${y}" x2="${legendX + 24}" y2="${y}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${legendX + 30}" y="${y + 4}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
