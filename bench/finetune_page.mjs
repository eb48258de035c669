// Fine-tuning speed in the page: 70 samples (10 per expression, captured with keys 1-7 from a fake camera made
// from a photo), the default settings, in headless Chromium; reports the fine-tuning time and the frames per
// second the camera view keeps before and during it. Also times the same fine-tuning in the engine under node
// (no page, same wasm) for reference.
//   node bench/finetune_page.mjs [--photo /usr/lib/python3/dist-packages/skimage/data/astronaut.png] [--runs 2]
// Needs build/wasm/dist and build/release (scripts/test.sh builds both). Reports; asserts nothing.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { serve, launch } from '../tests/web/helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const photo = opt('--photo', '/usr/lib/python3/dist-packages/skimage/data/astronaut.png');
const runs = Number(opt('--runs', 2));
const dist = path.join(root, 'build/wasm/dist');
const work = mkdtempSync(path.join(tmpdir(), 'ferkit-ftbench-'));
const clip = path.join(work, 'clip.y4m');
execFileSync(path.join(root, 'build/release/tests/make_y4m'), [photo, clip, '640', '480', '60']);

// Processed frames per second over ms, from the published frame counter.
const fps = (page, ms) => page.evaluate(async (ms) => {
  const i0 = window.ferkit.latest.frame.index, t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  return (window.ferkit.latest.frame.index - i0) / ((performance.now() - t0) / 1000);
}, ms);

const server = await serve(dist);
const { ctx, page } = await launch(chromium, work, {
  viewport: { width: 1100, height: 700 },
  args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${clip}`],
});
const out = { page: [], node: [] };
try {
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => window.ferkit && window.ferkit.ready && window.ferkit.latest &&
                                   window.ferkit.latest.faces.length > 0, null, { timeout: 120000 });
  for (let c = 1; c <= 7; c++)
    for (let i = 0; i < 10; i++) await page.evaluate((c) => window.ferkit.capture(c - 1), c);
  out.samples = await page.evaluate(() => window.ferkit.latest.teach.total);
  out.fps_idle = +(await fps(page, 4000)).toFixed(1);
  for (let r = 0; r < runs; r++) {
    const res = await page.evaluate(async () => {
      const i0 = window.ferkit.latest.frame.index, t0 = performance.now();
      if (!window.ferkit.finetune({})) return { error: window.ferkit.latest.teach.message };
      while (window.ferkit.latest.teach.state !== 'running') await new Promise((res) => setTimeout(res, 5));
      const rates = [];
      let last = i0, lastT = t0;
      while (window.ferkit.latest.teach.state === 'running') {
        await new Promise((res) => setTimeout(res, 250));
        const i = window.ferkit.latest.frame.index, t = performance.now();
        rates.push((i - last) / ((t - lastT) / 1000));
        last = i; lastT = t;
      }
      const t = window.ferkit.latest.teach;
      return { state: t.state, seconds: t.seconds, wall_s: (performance.now() - t0) / 1000, steps: t.steps,
               fps: (window.ferkit.latest.frame.index - i0) / ((performance.now() - t0) / 1000),
               min_fps_250ms: Math.min(...rates), held_before: t.held_before, held_after: t.held_after };
    });
    out.page.push(res);
  }
} finally {
  await ctx.close();
  server.stop();
}

// The same fine-tuning in the engine under node, on the same 70 crops? The page's crops stay in the page; node
// uses 70 synthetic crops (time depends on counts, not on content).
const M = await (await import(pathToFileURL(path.join(dist, 'ferkit-engine.mjs')).href)).default();
const model = readFileSync(path.join(root, 'assets/models/default.ferkit'));
const n = 70, crops = new Uint8Array(n * 2304), labels = new Uint8Array(n);
for (let i = 0; i < n; i++) { labels[i] = i % 7; for (let j = 0; j < 2304; j++) crops[i * 2304 + j] = (j * (i + 3) * 7) % 251; }
const copy = (b) => { const p = M._malloc(b.length); M.HEAPU8.set(b, p); return p; };
const ptrs = [copy(model), copy(crops), copy(labels), copy(new Uint8Array([123, 125, 0]))];
for (let r = 0; r < runs; r++) {
  const t0 = performance.now();
  if (!M._fk_ft_begin(ptrs[0], model.length, ptrs[1], ptrs[2], n, ptrs[3])) throw new Error(M.UTF8ToString(M._fk_last_error()));
  while (M._fk_ft_run(100) === 1) { /* train */ }
  if (!M._fk_ft_finish()) throw new Error(M.UTF8ToString(M._fk_last_error()));
  out.node.push({ seconds: +((performance.now() - t0) / 1000).toFixed(3) });
  M._fk_ft_end();
}
console.log(JSON.stringify(out, null, 2));
