// A small self-contained SVG line chart: several named series of (x, y) points, optional
// logarithmic y axis, a legend. No dependencies; used by the examples' plots.

export interface Series {
  name: string;
  points: Array<[number, number]>;
  /** CSS colour; a palette colour when omitted. */
  color?: string;
  /** Dashed line. */
  dashed?: boolean;
}

export interface LineChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Base-10 logarithmic y axis (non-positive values are dropped). */
  logY?: boolean;
  /** A vertical marker line at this x (e.g. where the forecast starts). */
  markerX?: number;
  /** Corner of the legend (default 'top-left'). */
  legend?: 'top-left' | 'top-right' | 'bottom-left' | 'bottom-right';
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** Escapes text for SVG and HTML. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function ticks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * step; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(4)));
}

/** Renders the series as an SVG document (a string). */
export function lineChartSvg(series: Series[], o: LineChartOptions = {}): string {
  const W = o.width ?? 720;
  const H = o.height ?? 400;
  const m = { l: 64, r: 16, t: 36, b: 48 };
  const ty = (v: number) => (o.logY ? Math.log10(v) : v);
  const clean = series.map((s) => ({
    ...s,
    pts: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logY || y > 0)).map(([x, y]) => [x, ty(y)] as [number, number]),
  }));
  const all = clean.flatMap((s) => s.pts);
  let [x0, x1] = all.length ? [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))] : [0, 1];
  let [y0, y1] = all.length ? [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))] : [0, 1];
  if (x1 - x0 < 1e-12) { x0 -= 0.5; x1 += 0.5; }
  if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.05;
  y0 -= pad; y1 += pad;
  const X = (x: number) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (y: number) => m.t + (1 - (y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  if (o.title) out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="14">${esc(o.title)}</text>`);
  const decadeStep = Math.max(1, Math.ceil((Math.ceil(y1) - Math.floor(y0)) / 8));
  const yt = o.logY
    ? Array.from({ length: Math.ceil(y1) - Math.floor(y0) + 1 }, (_, i) => Math.floor(y0) + i).filter((v) => v % decadeStep === 0 && v >= y0 && v <= y1)
    : ticks(y0, y1, 6);
  for (const v of yt) {
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end">${o.logY ? `1e${v}` : fmt(v)}</text>`);
  }
  for (const v of ticks(x0, x1, 8)) {
    out.push(`<line x1="${X(v).toFixed(1)}" x2="${X(v).toFixed(1)}" y1="${H - m.b}" y2="${H - m.b + 4}" stroke="#333"/>`);
    out.push(`<text x="${X(v).toFixed(1)}" y="${H - m.b + 16}" text-anchor="middle">${fmt(v)}</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#333"/>`);
  if (o.markerX !== undefined && o.markerX >= x0 && o.markerX <= x1) {
    out.push(`<line x1="${X(o.markerX).toFixed(1)}" x2="${X(o.markerX).toFixed(1)}" y1="${m.t}" y2="${H - m.b}" stroke="#999" stroke-dasharray="4 3"/>`);
  }
  if (o.xLabel) out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  if (o.yLabel) out.push(`<text transform="translate(14 ${(m.t + H - m.b) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`);
  const legendW = 36 + 7 * Math.max(0, ...clean.map((s) => s.name.length));
  const legendH = 16 * clean.length + 6;
  const corner = o.legend ?? 'top-left';
  const lx = corner.endsWith('left') ? m.l + 6 : W - m.r - 6 - legendW;
  const lyTop = corner.startsWith('top') ? m.t + 4 : H - m.b - 4 - legendH;
  out.push(`<rect x="${lx}" y="${lyTop}" width="${legendW}" height="${legendH}" fill="white" fill-opacity="0.85" stroke="#ccc"/>`);
  clean.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const dash = s.dashed ? ' stroke-dasharray="5 3"' : '';
    if (s.pts.length > 0) {
      const d = s.pts.map(([x, y], k) => `${k ? 'L' : 'M'}${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join('');
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"${dash}/>`);
    }
  });
  clean.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const dash = s.dashed ? ' stroke-dasharray="5 3"' : '';
    const ly = lyTop + 16 + i * 16;
    out.push(`<line x1="${lx + 6}" x2="${lx + 26}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${lx + 32}" y="${ly}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
