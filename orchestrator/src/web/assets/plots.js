// uPlot charts of the job page. Each chart keeps its data in plain arrays; `data-points` on its box
// counts the points it holds (the browser test reads it to see live points arrive).
const PALETTE = ['#0b57d0', '#b3261e', '#1a7f37', '#b26a00', '#6f42c1', '#00838f', '#c2185b', '#5d4037'];
export const rankColor = (r, n) => (n <= PALETTE.length ? PALETTE[r] : `hsl(${Math.round((r * 360) / n)}, 65%, 45%)`);

/** A line chart in `box` with x = step; `lines` = [{label, color, scale?, dash?, points?}]. */
export function chart(box, title, lines, width, opts = {}) {
  const scales = {x: {time: false}};
  const axes = [{label: 'step'}];
  for (const l of lines) {
    const s = l.scale ?? 'y';
    if (!scales[s]) {
      scales[s] = opts.range && s === 'y' ? {range: opts.range} : {};
      axes.push({scale: s, side: axes.length === 1 ? 3 : 1, label: l.axisLabel ?? '', grid: {show: axes.length === 1}});
    }
  }
  const plot = new uPlot({
    title, width, height: opts.height ?? 200, scales, axes,
    legend: {show: lines.length <= 12},
    cursor: {drag: {x: true, y: false}},
    series: [{label: 'step'}, ...lines.map((l) => ({
      label: l.label, stroke: l.color, scale: l.scale ?? 'y', width: 1.2, dash: l.dash, spanGaps: true,
      ...(l.points ? {paths: () => null, points: {show: true, size: 7, fill: l.color}} : {points: {show: false}}),
    }))],
  }, [[], ...lines.map(() => [])], box);
  const c = {plot, box, data: [[], ...lines.map(() => [])]};
  c.set = (data) => {
    c.data = data;
    plot.setData(data);
    box.dataset.points = String(data[0].length);
  };
  c.redraw = () => c.set(c.data);
  box.dataset.points = '0';
  return c;
}

/** Per-rank chart: one line per rank (+ optional constant threshold line). */
export function rankChart(box, title, ranks, width, threshold) {
  const lines = [...Array(ranks).keys()].map((r) => ({label: `rank ${r}`, color: rankColor(r, ranks)}));
  if (threshold !== undefined) lines.push({label: 'collapse threshold', color: '#b3261e', dash: [6, 4]});
  return chart(box, title, lines, width);
}

/** Step time per rank (solid) and each rank's own time, less its wait for the others (dashed, same colour). */
export function stepChart(box, title, ranks, width) {
  const lines = [...Array(ranks).keys()].map((r) => ({label: `rank ${r}`, color: rankColor(r, ranks)}));
  for (let r = 0; r < ranks; r++) lines.push({label: `rank ${r} own`, color: rankColor(r, ranks), dash: [4, 3]});
  return chart(box, title, lines, width);
}

/** Data for a per-rank chart from [rank][i] columns (and the threshold, drawn flat). */
export function rankData(x, cols, ranks, threshold) {
  const data = [x];
  for (let r = 0; r < ranks; r++) data.push(cols[r] ?? x.map(() => null));
  if (threshold !== undefined) data.push(x.map(() => threshold));
  return data;
}
