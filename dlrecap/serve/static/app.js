// dlrecap serve: asks the server for the runs every second and draws what it gets.
// Addresses: #run=NAME shows one run, #live follows the run `dlrecap train --live` trains,
// nothing shows the newest run.
'use strict';

const POLL_MS = 1000;
const FRAME_MS = 150;            // boundary animation: about 7 frames a second
const END_PAUSE_FRAMES = 8;      // ...holding the last frame a moment before it starts again
const ORANGE = [245, 147, 34], WHITE = [232, 234, 235], BLUE = [8, 119, 189];
// Multiclass surfaces hold the predicted class: each class in its colour, as in the pictures.
const CLASS_COLOURS = [ORANGE, BLUE, [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
  [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]];
const TRAIN_COLOUR = '#f59322', VALIDATION_COLOUR = '#0877bd', BEST_COLOUR = '#2a9d3a';
const LOG_RANGE = 1e3;           // a curve spanning more than this is drawn on a log scale

const $ = (id) => document.getElementById(id);
let shown = null;       // the run on the page
let seen = {};          // what is drawn already, so that unchanged parts are left alone
let frames = null;      // the boundary frames: {version, epochs, shape, lo, hi, data}
// While a run trains the newest frame is shown (follow) until play, pause or the slider is used.
let animation = { index: 0, playing: true, follow: true, wait: 0 };

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// Facts (epochs, counts, names) as they are; metrics with four decimals, as the terminal shows them.
function fmt(value) {
  if (typeof value === 'number' && Number.isInteger(value)) return String(value);
  return metric(value);
}

function metric(value) {
  if (value === null || value === undefined) return '-';
  if (typeof value !== 'number') return String(value);
  const size = Math.abs(value);
  return size !== 0 && (size < 1e-3 || size >= 1e5) ? value.toPrecision(4) : value.toFixed(4);
}

async function getJSON(path) {
  const response = await fetch(path, { cache: 'no-store' });
  if (response.status === 404) return null;
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function wanted(list) {
  let hash = location.hash.slice(1);
  try { hash = decodeURIComponent(hash); } catch { /* a hand-typed address: taken as it is */ }
  if (hash === 'live') return list.live;
  if (hash.startsWith('run=')) return hash.slice(4);
  return list.runs.length ? list.runs[list.runs.length - 1].run : null;
}

async function refresh() {
  try {
    const list = await getJSON('/api/runs');
    setConnection(true);
    renderList(list);
    const name = wanted(list);
    if (name) await showRun(name);
    else showPlaceholder(location.hash === '#live'
      ? 'Waiting for the run to start…' : 'No run yet: start one with dlrecap train CONFIG.');
  } catch (error) {
    setConnection(false, error);
  }
}

async function poll() {
  await refresh();
  setTimeout(poll, POLL_MS);
}

function setConnection(ok, error) {
  const badge = $('connection');
  badge.textContent = ok ? 'connected' : 'server not reachable';
  badge.className = 'badge ' + (ok ? 'running' : 'offline');
  if (error) console.warn(error);
}

function renderList(list) {
  $('runs-dir').textContent = list.runs_dir;
  const current = wanted(list);
  const items = list.runs.slice().reverse().map((run) => {
    const epochs = run.epochs === null ? '' : ` · ${run.epochs} epochs`;
    const test = run.test ? ` · ${escapeHtml(run.test)}` : '';
    const selected = run.run === current ? ' class="selected"' : '';
    return `<li${selected}><a href="#run=${encodeURIComponent(run.run)}">${escapeHtml(run.run)}</a>` +
      `<small>${escapeHtml(run.status)}${epochs}${test}</small></li>`;
  });
  const html = items.join('') || '<li class="muted">no runs yet</li>';
  if (html !== seen.list) $('runs').innerHTML = seen.list = html;
}

function showPlaceholder(text) {
  $('placeholder').textContent = text;
  $('placeholder').hidden = false;
  $('run').hidden = true;
  $('gone').hidden = true;
}

async function showRun(name) {
  if (name !== shown) {
    shown = name;
    seen = { list: seen.list };
    frames = null;
    $('pictures').innerHTML = '';
    $('boundary').hidden = true;
  }
  const run = await getJSON('/api/runs/' + encodeURIComponent(name));
  if (shown !== name) return;  // another run was picked meanwhile
  $('placeholder').hidden = true;
  if (run === null) {
    $('gone').textContent = `${name}: gone (its run directory is no longer there)`;
    $('gone').hidden = false;
    $('status').textContent = 'gone';
    $('status').className = 'badge gone';
    return;
  }
  $('gone').hidden = true;
  $('run').hidden = false;
  renderHeader(run);
  renderCurves(run);
  renderPictures(run);
  renderTables(run);
  await renderBoundary(run);
}

function renderHeader(run) {
  $('title').textContent = run.run;
  $('status').textContent = run.status;
  $('status').className = 'badge ' + run.status.split(' ')[0];
  $('epoch').textContent = run.epoch ?? '-';
  $('epochs').textContent = run.epochs ? ` / ${run.epochs}` : '';
  const { columns, rows } = run.history;
  const last = rows.length ? rows[rows.length - 1] : [];
  $('latest').innerHTML = columns.filter((c) => c !== 'epoch').map((c) =>
    `${escapeHtml(c)} <span class="value" id="latest-${escapeHtml(c)}">${metric(last[columns.indexOf(c)])}</span>`).join('');
  const problem = run.error || run.problem;
  $('error').textContent = problem || '';
  $('error').hidden = !problem;
  $('warnings').innerHTML = run.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join('');
}

// --- learning curves, drawn as SVG from history.csv -------------------------------------

function mainMetric(columns) {
  return columns.find((c) => !['epoch', 'loss', 'learning_rate'].includes(c) && !c.startsWith('val_'));
}

function renderCurves(run) {
  const { columns, rows } = run.history;
  const key = JSON.stringify([rows.length, rows[rows.length - 1], run.facts.best_epoch]);
  if (key === seen.curves) return;
  seen.curves = key;
  const epochs = rows.map((row) => row[columns.indexOf('epoch')]);
  const panels = ['loss', mainMetric(columns)].filter(Boolean).map((name) => {
    const series = [[name, TRAIN_COLOUR], ['val_' + name, VALIDATION_COLOUR]]
      .filter(([column]) => columns.includes(column))
      .map(([column, colour]) => ({ column, colour, values: rows.map((row) => row[columns.indexOf(column)]) }));
    return curvePanel(name, epochs, series, run.facts.best_epoch);
  });
  $('curves').innerHTML = rows.length ? panels.join('') : '<p class="muted">no epoch finished yet</p>';
}

// An axis label: three significant digits.
function tick(value) {
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e4 ? String(Number(value.toPrecision(3))) : value.toExponential(1);
}

function curvePanel(name, epochs, series, best) {
  const W = 440, H = 200, left = 52, right = 12, top = 22, bottom = 26;
  const finite = series.flatMap((s) => s.values).filter((v) => v !== null && Number.isFinite(v));
  if (!finite.length) return '';
  let lo = Math.min(...finite), hi = Math.max(...finite);
  const log = lo > 0 && hi / lo > LOG_RANGE;
  const scale = (v) => (log ? Math.log10(v) : v);
  let [slo, shi] = [scale(lo), scale(hi)];
  if (shi === slo) { slo -= 0.5; shi += 0.5; }
  const first = epochs[0], lastEpoch = Math.max(epochs[epochs.length - 1], first + 1);
  const x = (e) => left + (e - first) / (lastEpoch - first) * (W - left - right);
  const y = (v) => top + (1 - (scale(v) - slo) / (shi - slo)) * (H - top - bottom);
  const lines = series.map((s) => {
    const points = s.values.map((v, i) => (v === null ? null : `${x(epochs[i]).toFixed(1)},${y(v).toFixed(1)}`))
      .filter(Boolean).join(' ');
    return `<polyline data-series="${escapeHtml(s.column)}" fill="none" stroke="${s.colour}" stroke-width="2" points="${points}"/>`;
  }).join('');
  const legend = series.map((s, i) =>
    `<text x="${left + 8 + i * 110}" y="14" style="fill:${s.colour}">${escapeHtml(s.column)}</text>`).join('');
  const leftOfLine = best > (first + lastEpoch) / 2;  // the label stays inside the panel
  const bestLine = best && best >= first && best <= lastEpoch
    ? `<line x1="${x(best)}" x2="${x(best)}" y1="${top}" y2="${H - bottom}" stroke="${BEST_COLOUR}" stroke-dasharray="4 3"/>` +
      `<text x="${x(best) + (leftOfLine ? -3 : 3)}" y="${top + 12}" text-anchor="${leftOfLine ? 'end' : 'start'}" ` +
      `style="fill:${BEST_COLOUR}">best ${best}</text>` : '';
  return `<svg id="curve-${escapeHtml(name)}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(name)} per epoch">` +
    `<rect x="${left}" y="${top}" width="${W - left - right}" height="${H - top - bottom}" fill="none" stroke="#ccc"/>` +
    `<text x="${left - 4}" y="${top + 4}" text-anchor="end">${tick(hi)}</text>` +
    `<text x="${left - 4}" y="${H - bottom}" text-anchor="end">${tick(lo)}</text>` +
    `<text x="${left}" y="${H - 8}">${first}</text>` +
    `<text x="${W - right}" y="${H - 8}" text-anchor="end">epoch ${epochs[epochs.length - 1]}</text>` +
    `<text x="${W - right}" y="14" text-anchor="end">${escapeHtml(name)}${log ? ' (log scale)' : ''}</text>` +
    legend + bestLine + lines + '</svg>';
}

// --- pictures the run directory holds, reloaded when they change ------------------------

function renderPictures(run) {
  const box = $('pictures');
  const present = new Set(run.pictures.map((p) => p.name));
  for (const figure of [...box.children]) {
    if (!present.has(figure.dataset.name)) figure.remove();
  }
  run.pictures.forEach((picture, i) => {
    let figure = box.querySelector(`figure[data-name="${picture.name}"]`);
    if (!figure) {
      figure = document.createElement('figure');
      figure.dataset.name = picture.name;
      figure.innerHTML = `<img alt="${escapeHtml(picture.caption)}"><figcaption>${escapeHtml(picture.caption)}</figcaption>`;
    }
    if (box.children[i] !== figure) box.insertBefore(figure, box.children[i] || null);
    const version = `${picture.mtime}-${picture.size}`;
    if (figure.dataset.version !== version) {
      figure.dataset.version = version;
      figure.querySelector('img').src =
        `/runs/${encodeURIComponent(run.run)}/${picture.name}?v=${version}`;
    }
  });
}

// --- metrics, facts and config -----------------------------------------------------------

function renderTables(run) {
  const key = JSON.stringify([run.metrics, run.baseline, run.facts, run.status]);
  if (key !== seen.tables) {
    seen.tables = key;
    $('metrics').innerHTML = metricsTable(run) || '<p class="muted">when training ends</p>';
    $('facts').innerHTML = Object.entries({ status: run.status, ...run.facts })
      .map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(fmt(v))}</td></tr>`).join('');
  }
  const config = run.config ?? '(no config.yaml yet)';
  if (config !== seen.config) $('config').textContent = seen.config = config;
}

function metricsTable(run) {
  const splits = Object.keys(run.metrics);
  if (!splits.length) return '';
  const names = Object.keys(run.metrics[splits[0]]);
  const row = (label, values, cls) => `<tr${cls ? ` class="${cls}"` : ''}><td>${escapeHtml(label)}</td>` +
    names.map((n) => `<td>${metric(values[n])}</td>`).join('') + '</tr>';
  const rows = splits.map((s) => row(s, run.metrics[s]));
  const baselineSplit = ['test', 'validation'].find((s) => run.baseline && run.baseline[s]);
  if (baselineSplit) rows.push(row(`baseline (${baselineSplit})`, run.baseline[baselineSplit], 'baseline'));
  return `<table id="metrics-table"><tr><th>split</th>${names.map((n) => `<th>${escapeHtml(n)}</th>`).join('')}</tr>` +
    rows.join('') + '</table>';
}

// --- the boundary over time, from boundary_frames.npz --------------------------------------

async function renderBoundary(run) {
  if (!run.frames) {
    $('boundary').hidden = true;
    frames = null;
    return;
  }
  const version = `${run.frames.mtime}-${run.frames.size}`;
  if (!frames || frames.version !== version) {
    const response = await fetch(`/api/runs/${encodeURIComponent(run.run)}/frames`, { cache: 'no-store' });
    const data = await response.json();
    if (!response.ok) {
      $('boundary-problem').textContent = data.error || 'the boundary frames cannot be shown';
      $('boundary-problem').hidden = false;
      return;
    }
    $('boundary-problem').hidden = true;
    const bytes = Uint8Array.from(atob(data.data), (c) => c.charCodeAt(0));
    frames = { ...data, version, data: bytes };
    $('frame').max = data.shape[0] - 1;
    if ((run.status === 'running' && animation.follow) || animation.index >= data.shape[0]) {
      animation.index = data.shape[0] - 1;
    }
  }
  frames.running = run.status === 'running';
  frames.paint = painter(run, frames);
  const moving = animation.playing && !(frames.running && animation.follow);
  $('play').textContent = moving ? 'pause' : 'play';
  $('boundary-legend').textContent = legend(run, frames);
  $('boundary').hidden = false;
  drawFrame(animation.index);
}

function painter(run, f) {
  if (run.facts.task !== 'multiclass') return (byte) => ramp(byte / 255);
  return (byte) => CLASS_COLOURS[Math.round(f.lo + byte / 255 * (f.hi - f.lo)) % CLASS_COLOURS.length];
}

function legend(run, f) {
  const labels = run.labels || [];
  const [across, up] = run.features && run.features.length === 2 ? run.features : ['x', 'y'];
  const plane = `${across} ${tick(f.xs[0])} to ${tick(f.xs[f.xs.length - 1])} across, ` +
    `${up} ${tick(Math.min(...f.ys))} to ${tick(Math.max(...f.ys))} up`;
  if (run.facts.task === 'multiclass') {
    const names = ['orange', 'blue', 'green', 'red', 'purple', 'brown', 'pink', 'grey', 'olive', 'cyan'];
    return 'the predicted class: ' + labels.map((label, i) => `${label} ${names[i % names.length]}`).join(', ') +
      `; ${plane}`;
  }
  if (labels.length === 2 && f.lo === 0 && f.hi === 1) {
    return `P(${labels[1]}) from 0 (orange, ${labels[0]}) to 1 (blue, ${labels[1]}); ${plane}`;
  }
  return `from ${fmt(f.lo)} (orange) to ${fmt(f.hi)} (blue); ${plane}`;
}

function ramp(t) {
  const [a, b, s] = t < 0.5 ? [ORANGE, WHITE, t * 2] : [WHITE, BLUE, (t - 0.5) * 2];
  return a.map((v, i) => Math.round(v + (b[i] - v) * s));
}

function drawFrame(index) {
  if (!frames) return;
  const [count, ny, nx] = frames.shape;
  index = Math.max(0, Math.min(count - 1, index));
  animation.index = index;
  const plane = document.createElement('canvas');
  plane.width = nx;
  plane.height = ny;
  const context = plane.getContext('2d');
  const image = context.createImageData(nx, ny);
  const upward = frames.ys.length < 2 || frames.ys[frames.ys.length - 1] > frames.ys[0];
  for (let row = 0; row < ny; row++) {
    const source = index * nx * ny + (upward ? ny - 1 - row : row) * nx;  // the top row is the largest y
    for (let col = 0; col < nx; col++) {
      const [r, g, b] = frames.paint(frames.data[source + col]);
      const at = (row * nx + col) * 4;
      image.data[at] = r; image.data[at + 1] = g; image.data[at + 2] = b; image.data[at + 3] = 255;
    }
  }
  context.putImageData(image, 0, 0);
  const canvas = $('boundary-canvas');
  const target = canvas.getContext('2d');
  target.imageSmoothingEnabled = true;
  target.drawImage(plane, 0, 0, canvas.width, canvas.height);
  $('frame').value = index;
  const restored = index === count - 1 && frames.kept_epoch !== null && frames.kept_epoch !== frames.epochs[index];
  const weights = restored ? `, the kept weights of epoch ${frames.kept_epoch}` : '';
  $('frame-epoch').textContent = `epoch ${frames.epochs[index]}${weights} (frame ${index + 1} of ${count})`;
}

function animate() {
  if (frames && animation.playing && !(frames.running && animation.follow)) {
    const last = frames.shape[0] - 1;
    if (animation.index < last) drawFrame(animation.index + 1);
    else if (++animation.wait > END_PAUSE_FRAMES) { animation.wait = 0; drawFrame(0); }
  }
  setTimeout(animate, FRAME_MS);
}

$('play').addEventListener('click', () => {
  animation.playing = !(animation.playing && !(frames && frames.running && animation.follow));
  animation.follow = false;
  $('play').textContent = animation.playing ? 'pause' : 'play';
});
$('frame').addEventListener('input', (event) => {
  animation.playing = false;
  animation.follow = false;
  $('play').textContent = 'play';
  drawFrame(Number(event.target.value));
});
window.addEventListener('hashchange', () => { shown = null; refresh(); });

poll();
animate();
