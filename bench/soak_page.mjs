// Long use of the page: the live page on a fake camera (a clip made from a photo) for a long while, with a
// fine-tuning on 70 captured samples every few minutes, sampling every ~30 s: the page's JavaScript heap (after a
// forced garbage collection, CDP Runtime.getHeapUsage), its WebAssembly memory (index.wasm's: the memory's size,
// which only grows, and what malloc holds in it now), the fine-tuning worker's WebAssembly memory, DOM nodes and
// event listeners (CDP Memory.getDOMCounters) and the processed frames per second; also the time from navigation
// to the first classification. A returning visitor's profile (camera permission granted), so the page starts the
// camera by itself, as it does for one.
//   node bench/soak_page.mjs [--minutes 30] [--finetune-every 3 (minutes; 0: never)] [--sample-every 30 (s)]
//                            [--warmup 0 (minutes; 0: until the first fine-tuning is done)] [--why gradcam]
//                            [--width 1100 --height 700] [--photo astronaut.png] [--out soak.json]
// Needs build/wasm/dist and build/release (make_y4m). Reports (a line per sample, then a JSON summary); asserts
// nothing. It keeps both cores of a small machine busy for the whole run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve, launch } from '../tests/web/helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const num = (name, def) => {
  const v = Number(opt(name, def));
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name}: expected a number >= 0, got ${opt(name)}`);
  return v;
};
const minutes = num('--minutes', 30), finetuneEvery = num('--finetune-every', 3), sampleEvery = num('--sample-every', 30);
const warmupMinutes = num('--warmup', 0);
const photo = opt('--photo', '/usr/lib/python3/dist-packages/skimage/data/astronaut.png');
const out = opt('--out');
const work = mkdtempSync(path.join(tmpdir(), 'ferkit-soak-'));
const clip = path.join(work, 'clip.y4m');
execFileSync(path.join(root, 'build/release/tests/make_y4m'), [photo, clip, '640', '480', '30']);

const MB = 1 << 20;
const server = await serve(path.join(root, 'build/wasm/dist'));
const { ctx, page, log } = await launch(chromium, work, {
  viewport: { width: Number(opt('--width', 1100)), height: Number(opt('--height', 700)) },
  args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${clip}`],
});
// From navigation start (performance.now()): the app's first drawn frame, the first camera frame, the first face
// classified.
await page.addInitScript(() => {
  const marks = window.__soak = {};
  const check = () => {
    const f = window.ferkit;
    if (f && f.ready && marks.ready === undefined) marks.ready = performance.now();
    if (f && f.latest && f.latest.frame.width > 0 && marks.frame === undefined) marks.frame = performance.now();
    if (f && f.latest && f.latest.faces.length > 0) { marks.classified = performance.now(); return; }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
});
const cdp = await ctx.newCDPSession(page);
await cdp.send('HeapProfiler.enable');

const samples = [];
const finetunes = [];
const summary = {};
try {
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => window.__soak.classified !== undefined, null, { timeout: 180000 });
  const marks = await page.evaluate(() => window.__soak);
  summary.ready_ms = Math.round(marks.ready);
  summary.first_frame_ms = Math.round(marks.frame);
  summary.first_classification_ms = Math.round(marks.classified);
  console.log(`ready ${summary.ready_ms} ms, first camera frame ${summary.first_frame_ms} ms, first classification ` +
              `${summary.first_classification_ms} ms after navigation`);
  const why = opt('--why');
  if (why) await page.evaluate((m) => window.ferkit.showWhy(true, m), why);
  // 70 samples, 10 per expression (the content does not matter for memory and time).
  for (let c = 0; c < 7; c++)
    for (let i = 0; i < 10; i++) {
      await page.evaluate((c) => window.ferkit.capture(c), c);
      await page.waitForTimeout(20);
    }

  const sample = async (t0) => {
    await cdp.send('HeapProfiler.collectGarbage');
    const heap = await cdp.send('Runtime.getHeapUsage');
    const dom = await cdp.send('Memory.getDOMCounters');
    const p = await page.evaluate(() => ({ wasm: HEAPU8.length, in_use: Module._ferkit_heap_in_use(), index: window.ferkit.latest.frame.index,
                                           ui_fps: window.ferkit.latest.fps, faces: window.ferkit.latest.faces.length,
                                           teach: window.ferkit.latest.teach.state, now: performance.now() }));
    let worker = null;
    for (const w of page.workers()) {
      try { worker = await w.evaluate(() => (self.ferkitEngineBytes ? self.ferkitEngineBytes() : null)); } catch { /* gone */ }
    }
    return { t_s: (Date.now() - t0) / 1000, js_heap_used: heap.usedSize, js_heap_total: heap.totalSize,
             wasm_page: p.wasm, wasm_page_in_use: p.in_use, wasm_worker: worker, dom_nodes: dom.nodes, listeners: dom.jsEventListeners,
             frame: p.index, page_ms: p.now, ui_fps: p.ui_fps, faces: p.faces, teach: p.teach };
  };

  const t0 = Date.now(), end = t0 + minutes * 60000;
  let nextSample = t0, nextTune = finetuneEvery > 0 ? t0 : Infinity, tuning = null, prev = null;
  console.log('   t (s)  JS heap MB  page wasm MB (in use)  worker wasm MB  DOM nodes  listeners  frames/s  fine-tunings');
  while (Date.now() < end) {
    const now = Date.now();
    if (tuning) {
      const t = await page.evaluate(() => window.ferkit.latest.teach);
      if (t.state !== 'running') {
        finetunes.push({ at_s: tuning.at_s, state: t.state, seconds: t.seconds, message: t.message });
        tuning = null;
      }
    } else if (now >= nextTune) {
      const ok = await page.evaluate(() => window.ferkit.finetune({}));
      if (!ok) finetunes.push({ at_s: (now - t0) / 1000, state: 'not started',
                                message: await page.evaluate(() => window.ferkit.latest.teach.message) });
      else tuning = { at_s: (now - t0) / 1000 };
      nextTune += finetuneEvery * 60000;
    }
    if (now >= nextSample) {
      const s = await sample(t0);
      s.fps = prev ? (s.frame - prev.frame) / ((s.page_ms - prev.page_ms) / 1000) : null;
      s.finetunes = finetunes.filter((f) => f.state === 'done').length;
      s.tuning = !!tuning;
      samples.push(s);
      prev = s;
      console.log(`${s.t_s.toFixed(0).padStart(8)}  ${(s.js_heap_used / MB).toFixed(2).padStart(10)}  ` +
                  `${(s.wasm_page / MB).toFixed(1).padStart(12)} ${('(' + (s.wasm_page_in_use / MB).toFixed(1) + ')').padStart(8)}  ${(s.wasm_worker === null ? '-' : (s.wasm_worker / MB).toFixed(1)).padStart(14)}  ` +
                  `${String(s.dom_nodes).padStart(9)}  ${String(s.listeners).padStart(9)}  ` +
                  `${(s.fps === null ? '-' : s.fps.toFixed(1)).padStart(8)}  ${s.finetunes}${s.tuning ? ' (running)' : ''}`);
      nextSample += sampleEvery * 1000;
    }
    await page.waitForTimeout(250);
  }
  const last = await sample(t0);
  last.fps = prev ? (last.frame - prev.frame) / ((last.page_ms - prev.page_ms) / 1000) : null;
  last.finetunes = finetunes.filter((f) => f.state === 'done').length;
  samples.push(last);

  // Warm-up: until --warmup minutes, or until the first fine-tuning finished (its model stored, the worker's
  // memory grown); growth is measured from the first sample after it.
  const firstDone = finetunes.find((f) => f.state === 'done');
  const warmS = warmupMinutes > 0 ? warmupMinutes * 60 : firstDone ? firstDone.at_s + firstDone.seconds : 0;
  const base = samples.find((s) => s.t_s >= warmS && !s.tuning) || samples[0];
  const after = samples.filter((s) => s.t_s >= base.t_s);
  const growth = (k) => {
    const v = after.map((s) => s[k]).filter((x) => x !== null);
    return v.length ? { at_warmup: base[k], last: v[v.length - 1], max: Math.max(...v), growth_last: v[v.length - 1] - base[k],
                        growth_max: Math.max(...v) - base[k] } : null;
  };
  const fps = samples.map((s) => s.fps).filter((f) => f !== null).sort((a, b) => a - b);
  Object.assign(summary, {
    minutes, finetune_every_minutes: finetuneEvery, samples: samples.length, warmup_s: base.t_s,
    finetunes: finetunes.length, finetunes_done: finetunes.filter((f) => f.state === 'done').length,
    finetune_seconds: finetunes.map((f) => +(f.seconds || 0).toFixed(2)),
    js_heap_bytes: growth('js_heap_used'), wasm_page_bytes: growth('wasm_page'),
    wasm_page_in_use_bytes: growth('wasm_page_in_use'), wasm_worker_bytes: growth('wasm_worker'),
    dom_nodes: growth('dom_nodes'), listeners: growth('listeners'),
    fps: fps.length ? { min: fps[0], median: fps[Math.floor(fps.length / 2)], max: fps[fps.length - 1] } : null,
    console_errors: log.errors,
  });
  console.log(JSON.stringify(summary, null, 2));
  if (out) {
    writeFileSync(out + '.tmp', JSON.stringify({ summary, finetunes, samples }, null, 1));
    renameSync(out + '.tmp', out);
  }
} finally {
  await ctx.close();
  server.stop();
}
