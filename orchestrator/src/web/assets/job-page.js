// One job: live plots (downsampled history from /ui/api/jobs/ID/series, then new points from the live
// feed), health, generations timeline, checkpoints, spec and plan, events.
import {esc, getJson, readEvents} from '/ui/api.js';
import {chart, rankChart, rankData, stepChart} from '/ui/plots.js';
import {appendEvents, renderCheckpoints, renderGenerations, renderHealth, renderSpec, renderStats} from '/ui/job-tables.js';

const SKELETON = (id) => `<h1>Job ${esc(id)}</h1><div id="stats" class="stats card"></div>
  <h2>Health across ranks</h2><div id="health" class="card"></div>
  <h2>Training</h2><div class="grid">
    <div class="card" id="p-loss"></div><div class="card" id="p-knn"></div>
    <div class="card" id="p-sched"></div><div class="card" id="p-imgs"></div></div>
  <h2>Per rank</h2><div class="grid">
    <div class="card" id="p-step"></div><div class="card" id="p-data"></div><div class="card" id="p-z"></div></div>
  <h2>Generations</h2><div id="gens"></div>
  <h2>Checkpoints</h2><div id="ckpts"></div>
  <h2>Events</h2><div id="events"></div>
  <h2>Spec and plan</h2><div id="spec"></div>`;

export async function jobPage(root, id) {
  const base = `/v1/jobs/${encodeURIComponent(id)}`;
  let job = await getJson(base);
  root.innerHTML = SKELETON(id);
  const $ = (sel) => root.querySelector(sel);
  const width = Math.max(320, $('#p-loss').clientWidth - 16);
  const ctrl = new AbortController();
  let series = await getJson(`/ui/api/jobs/${encodeURIComponent(id)}/series?width=${width}`);
  const ranks = Math.max(1, series.ranks.stepTimeS.length, job.spec.spec.resources?.workers ?? 1, ...job.generations.map((g) => g.worldSize));
  let threshold = series.collapseZStd;
  const charts = {
    loss: chart($('#p-loss'), 'Loss and online/target cosine', [{label: 'loss', color: '#0b57d0'},
      {label: 'cos', color: '#1a7f37', scale: 'cos', axisLabel: 'cos'}], width),
    knn: chart($('#p-knn'), 'kNN top-1 at monitor points', [{label: 'kNN top-1', color: '#6f42c1', points: true}], width, {range: [0, 1]}),
    sched: chart($('#p-sched'), 'LR and tau', [{label: 'LR', color: '#b26a00'}, {label: 'tau', color: '#00838f', scale: 'tau', axisLabel: 'tau'}], width),
    imgs: chart($('#p-imgs'), 'Images per second (all ranks)', [{label: 'img/s', color: '#c2185b'}], width),
    step: stepChart($('#p-step'), 'Step time per rank, and own time without the wait for the others (dashed, s)', ranks, width),
    data: rankChart($('#p-data'), 'Data-wait share per rank', ranks, width),
    z: rankChart($('#p-z'), 'z_std per rank (collapse monitor)', ranks, width, threshold),
  };
  const load = (s) => {
    const c = s.scalars;
    charts.loss.set([c.x, c.loss, c.cos]);
    charts.knn.set([s.knn.map((k) => k[0]), s.knn.map((k) => k[1])]);
    charts.sched.set([c.x, c.lr, c.tau]);
    charts.imgs.set([c.x, c.imagesPerSec]);
    charts.step.set([...rankData(s.ranks.x, s.ranks.stepTimeS, ranks), ...rankData(s.ranks.x, s.ranks.ownTimeS ?? [], ranks).slice(1)]);
    charts.data.set(rankData(s.ranks.x, s.ranks.dataShare, ranks));
    charts.z.set(rankData(s.ranks.x, s.ranks.zStd, ranks, threshold));
  };
  load(series);
  let lastStep = series.lastStep;
  let refetching = false;
  const append = (points) => {
    const fresh = points.filter((p) => p.step > lastStep);
    if (fresh.length === 0) return;
    lastStep = fresh[fresh.length - 1].step;
    if (charts.loss.data[0].length + fresh.length > 3 * width && !refetching) {
      refetching = true; // too many points to draw: fetch the downsampled history again
      getJson(`/ui/api/jobs/${encodeURIComponent(id)}/series?width=${width}`).then((s) => load(s)).finally(() => (refetching = false));
      return;
    }
    const push = (c, rows) => c.set(c.data.map((col, i) => col.concat(rows.map((r) => r[i]))));
    push(charts.loss, fresh.map((p) => [p.step, p.loss, p.cos]));
    push(charts.sched, fresh.map((p) => [p.step, p.lr, p.tau]));
    push(charts.imgs, fresh.map((p) => [p.step, p.imagesPerSec]));
    const knn = fresh.filter((p) => p.knn !== null);
    if (knn.length) push(charts.knn, knn.map((p) => [p.step, p.knn]));
    const perRank = (pick, thr) => fresh.map((p) => [p.step, ...[...Array(ranks).keys()].map((r) => pick(p)[r] ?? null),
      ...(thr === undefined ? [] : [thr])]);
    const own = perRank((p) => p.ownTimeS ?? []);
    push(charts.step, perRank((p) => p.stepTimeS).map((row, i) => row.concat(own[i].slice(1))));
    push(charts.data, perRank((p) => p.dataShare));
    push(charts.z, perRank((p) => p.zStdRanks, threshold));
  };

  const events = $('#events');
  const prior = await getJson(`${base}/events`);
  appendEvents(events, prior);
  let lastSeq = prior.length ? prior[prior.length - 1].seq : 0;
  const alarmEvents = prior.filter((e) => e.type === 'health' && e.level === 'warn').map((e) => ({kind: e.data?.alarm, sinceStep: e.data?.sinceStep, message: e.message}));
  const showJob = (j) => {
    job = {...job, ...j};
    renderStats($('#stats'), job);
    renderHealth($('#health'), job, alarmEvents);
    renderGenerations($('#gens'), job);
  };
  const refreshCheckpoints = async () => renderCheckpoints($('#ckpts'), await getJson(`${base}/checkpoints`));
  showJob(job);
  renderSpec($('#spec'), job);
  await refreshCheckpoints();

  const onEvent = (name, data) => {
    if (name === 'points') append(data);
    else if (name === 'job') showJob(data);
    else if (name === 'events') {
      lastSeq = data[data.length - 1].seq;
      appendEvents(events, data);
      for (const e of data) if (e.type === 'health' && e.level === 'warn') alarmEvents.push({kind: e.data?.alarm, sinceStep: e.data?.sinceStep, message: e.message});
      if (data.some((e) => e.type === 'checkpoint')) refreshCheckpoints().catch(() => undefined);
    }
  };
  (async () => {
    let ended = false;
    while (!ctrl.signal.aborted && !ended) {
      try {
        await readEvents(`/ui/api/jobs/${encodeURIComponent(id)}/live?fromStep=${lastStep + 1}&afterSeq=${lastSeq}`,
          (name, data) => {
            if (name === 'end') ended = true;
            onEvent(name, data);
          }, ctrl.signal);
        document.getElementById('conn').textContent = ended ? '' : 'reconnecting…';
      } catch {
        if (ctrl.signal.aborted) return;
        document.getElementById('conn').textContent = 'live feed lost; retrying';
      }
      if (!ended) await new Promise((r) => setTimeout(r, 2000));
    }
    if (ended) refreshCheckpoints().catch(() => undefined);
  })();
  return () => ctrl.abort();
}
