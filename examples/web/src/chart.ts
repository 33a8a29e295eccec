// The training-loss curve as plain SVG: every step (light) and a moving average (bold).
const NS = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 200;
const PAD = { left: 44, right: 10, top: 10, bottom: 24 };

function el(name: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Moving average over the last `window` values. */
function movingAverage(values: number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  values.forEach((v, i) => {
    sum += v;
    if (i >= window) sum -= values[i - window];
    out.push(sum / Math.min(i + 1, window));
  });
  return out;
}

export function drawLossChart(svg: SVGSVGElement, losses: number[]): void {
  svg.replaceChildren();
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  svg.append(el('rect', { x: PAD.left, y: PAD.top, width: plotW, height: plotH, class: 'frame' }));
  if (losses.length === 0) {
    svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'label' }, 'the loss appears here while training'));
    return;
  }
  const lo = Math.min(...losses);
  const hi = Math.max(...losses);
  const span = hi - lo || 1;
  const n = Math.max(losses.length - 1, 1);
  const x = (i: number) => PAD.left + (i / n) * plotW;
  const y = (v: number) => PAD.top + (1 - (v - lo) / span) * plotH;
  // at most ~plotW points per line
  const stride = Math.max(1, Math.floor(losses.length / plotW));
  const line = (values: number[], cls: string) => {
    const pts: string[] = [];
    for (let i = 0; i < values.length; i += stride) pts.push(`${x(i).toFixed(1)},${y(values[i]).toFixed(1)}`);
    pts.push(`${x(values.length - 1).toFixed(1)},${y(values[values.length - 1]).toFixed(1)}`);
    svg.append(el('polyline', { points: pts.join(' '), class: cls }));
  };
  line(losses, 'raw');
  line(movingAverage(losses, 20), 'avg');
  for (const v of [lo, (lo + hi) / 2, hi]) {
    svg.append(el('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'label' }, v.toFixed(2)));
  }
  svg.append(el('text', { x: PAD.left, y: H - 6, class: 'label' }, 'step 1'));
  svg.append(el('text', { x: W - PAD.right, y: H - 6, 'text-anchor': 'end', class: 'label' }, `step ${losses.length}`));
}
