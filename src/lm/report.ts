// Pictures of a run: training and validation curves as an SVG, and a small self-contained HTML
// report (the SVG inline, the configuration, the final numbers and samples), no external files.
import { esc, lineChartSvg } from '../tasks/plot.js';

/** One point of a training or validation curve. */
export interface CurvePoint { step: number; value: number }

/** Title, axis label and size of a curve chart. */
export interface CurveOptions {
  title?: string;
  yLabel?: string;
  width?: number;
  height?: number;
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

/** Line chart of a training series (smoothed) and a validation series, on the shared SVG chart. */
export function curvesSvg(train: CurvePoint[], val: CurvePoint[], o: CurveOptions = {}): string {
  const points = (pts: CurvePoint[]) => pts.map((p) => [p.step, p.value] as [number, number]);
  return lineChartSvg(
    [
      { name: 'train (smoothed)', points: points(train), color: '#1f77b4' },
      { name: 'validation', points: points(val), color: '#d62728' },
    ],
    { title: o.title, xLabel: 'step', yLabel: o.yLabel ?? 'loss', width: o.width ?? 640, height: o.height ?? 360, legend: 'top-right' },
  );
}

/**
 * What the self-contained HTML report of a run shows: title, curves (SVG), summary rows,
 * configuration and samples.
 */
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
