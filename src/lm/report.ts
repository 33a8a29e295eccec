// Pictures of a run: training and validation curves as an SVG, and a small self-contained HTML
// report (the SVG inline, the configuration, the final numbers and samples), no external files.

export interface CurvePoint { step: number; value: number }

export interface CurveOptions {
  title?: string;
  yLabel?: string;
  width?: number;
  height?: number;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Moving average over a window of points (for a noisy training curve). */
export function smooth(points: CurvePoint[], window: number): CurvePoint[] {
  if (window <= 1) return points;
  const out: CurvePoint[] = [];
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += points[i].value;
    if (i >= window) sum -= points[i - window].value;
    out.push({ step: points[i].step, value: sum / Math.min(i + 1, window) });
  }
  return out;
}

function niceTicks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Line chart of a training series (smoothed) and a validation series (points joined). */
export function curvesSvg(train: CurvePoint[], val: CurvePoint[], o: CurveOptions = {}): string {
  const W = o.width ?? 640;
  const H = o.height ?? 360;
  const m = { l: 56, r: 16, t: 32, b: 44 };
  const all = [...train, ...val].filter((p) => Number.isFinite(p.value));
  const maxStep = Math.max(1, ...all.map((p) => p.step));
  let lo = Math.min(...all.map((p) => p.value));
  let hi = Math.max(...all.map((p) => p.value));
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  if (hi - lo < 1e-6) { hi += 0.5; lo -= 0.5; }
  const pad = (hi - lo) * 0.05;
  lo -= pad; hi += pad;
  const x = (s: number) => m.l + (s / maxStep) * (W - m.l - m.r);
  const y = (v: number) => m.t + (1 - (v - lo) / (hi - lo)) * (H - m.t - m.b);
  const path = (pts: CurvePoint[]) => pts.filter((p) => Number.isFinite(p.value)).map((p, i) => `${i ? 'L' : 'M'}${x(p.step).toFixed(1)},${y(p.value).toFixed(1)}`).join('');
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  if (o.title) parts.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(o.title)}</text>`);
  for (const v of niceTicks(lo, hi, 6)) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#444">${v}</text>`);
  }
  for (const s of niceTicks(0, maxStep, 6)) {
    parts.push(`<line x1="${x(s).toFixed(1)}" x2="${x(s).toFixed(1)}" y1="${H - m.b}" y2="${H - m.b + 4}" stroke="#444"/>`);
    parts.push(`<text x="${x(s).toFixed(1)}" y="${H - m.b + 18}" text-anchor="middle" fill="#444">${s}</text>`);
  }
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#444"/>`);
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="#444"/>`);
  parts.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 8}" text-anchor="middle">step</text>`);
  parts.push(`<text transform="translate(14 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel ?? 'loss')}</text>`);
  if (train.length) parts.push(`<path d="${path(train)}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>`);
  if (val.length) {
    parts.push(`<path d="${path(val)}" fill="none" stroke="#d62728" stroke-width="1.5"/>`);
    for (const p of val.filter((q) => Number.isFinite(q.value))) parts.push(`<circle cx="${x(p.step).toFixed(1)}" cy="${y(p.value).toFixed(1)}" r="2.5" fill="#d62728"/>`);
  }
  parts.push(`<g transform="translate(${W - m.r - 150} ${m.t + 6})"><rect width="146" height="40" fill="white" stroke="#ccc"/>`);
  parts.push(`<line x1="8" x2="28" y1="13" y2="13" stroke="#1f77b4" stroke-width="2"/><text x="34" y="17">train (smoothed)</text>`);
  parts.push(`<line x1="8" x2="28" y1="30" y2="30" stroke="#d62728" stroke-width="2"/><text x="34" y="34">validation</text></g>`);
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

export interface ReportData {
  title: string;
  svg: string;
  summary: Array<[string, string]>;
  config: Record<string, unknown>;
  samples: string[];
}

/** A self-contained HTML page (inline SVG and styles, no scripts, no external resources). */
export function reportHtml(d: ReportData): string {
  const rows = (pairs: Array<[string, string]>) => pairs.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('\n');
  const config = Object.entries(d.config).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)] as [string, string]);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(d.title)}</title>
<style>body{font-family:sans-serif;max-width:900px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}th{background:#f6f6f6}
pre{background:#f6f6f6;padding:1em;white-space:pre-wrap}</style></head>
<body><h1>${esc(d.title)}</h1>
${d.svg}
<h2>Summary</h2><table>${rows(d.summary)}</table>
<h2>Samples</h2>${d.samples.map((s) => `<pre>${esc(s)}</pre>`).join('\n') || '<p>none</p>'}
<h2>Configuration</h2><table>${rows(config)}</table>
</body></html>
`;
}
