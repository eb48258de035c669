// The live page's frame rate at 640x480 and the bytes a first load transfers, in headless Chromium with a fake
// camera (a clip made from a photo by build/release/tests/make_y4m).
//   node bench/page_metrics.mjs [--seconds 10] [--photo /usr/lib/python3/dist-packages/skimage/data/astronaut.png]
//                               [--clip a.y4m (instead of the photo)] [--width 1100 --height 700 (viewport)]
//                               [--why gradcam|gradient-x-input|smoothgrad (the saliency overlay on)]
// Needs build/wasm/dist and build/release (scripts/test.sh builds both). Reports; asserts nothing.
import { spawn, execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const seconds = Number(opt('--seconds', 10));
const photo = opt('--photo', '/usr/lib/python3/dist-packages/skimage/data/astronaut.png');
const work = mkdtempSync(path.join(tmpdir(), 'ferkit-metrics-'));
const clip = path.join(work, 'clip.y4m');
if (opt('--clip')) copyFileSync(opt('--clip'), clip);
else execFileSync(path.join(root, 'build/release/tests/make_y4m'), [photo, clip, '640', '480', '60']);

const server = spawn('python3', ['-u', '-m', 'http.server', '--bind', '127.0.0.1', '--directory',
                                 path.join(root, 'build/wasm/dist'), '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
const origin = await new Promise((resolve) => {
  let out = '';
  server.stdout.on('data', (d) => { out += d; const m = out.match(/port (\d+)/); if (m) resolve(`http://127.0.0.1:${m[1]}`); });
});
const ctx = await chromium.launchPersistentContext(path.join(work, 'profile'), {
  executablePath: '/usr/bin/chromium', headless: true, permissions: ['camera'], viewport: { width: Number(opt("--width", 1100)), height: Number(opt("--height", 700)) },
  args: ['--no-sandbox', '--disable-gpu', '--enable-unsafe-swiftshader', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${clip}`],
});
const page = ctx.pages()[0] || await ctx.newPage();
const sizes = [];
page.on('response', async (r) => { try { sizes.push([r.url(), (await r.body()).length]); } catch { /* no body */ } });
const t0 = Date.now();
await page.goto(`${origin}/`);
await page.waitForFunction(() => window.ferkit && window.ferkit.latest, null, { timeout: 120000 });
const startup_s = (Date.now() - t0) / 1000;
const why = opt('--why');
if (why) await page.evaluate((m) => window.ferkit.showWhy(true, m), why);
// Frames processed over the window: count distinct published results.
const r = await page.evaluate(async (ms) => {
  let n = 0, last = window.ferkit.latest, samples = [];
  const end = performance.now() + ms;
  while (performance.now() < end) {
    await new Promise((res) => requestAnimationFrame(res));
    if (window.ferkit.latest.frame.index !== last.frame.index) {
      last = window.ferkit.latest;
      n++;
      const explain = last.why ? last.why.explain_ms : 0;
      samples.push({ ...last.timings, explain_ms: explain, explain_ms_per_face: last.faces.length ? explain / last.faces.length : 0 });
    }
  }
  const med = (k) => { const v = samples.map((s) => s[k]).sort((a, b) => a - b); return v[Math.floor(v.length / 2)]; };
  return { frames: n, fps: n / (ms / 1000), ui_fps: window.ferkit.latest.fps, faces: last.faces.length,
           median: { grab_ms: med('grab_ms'), detect_ms: med('detect_ms'), classify_ms: med('classify_ms'), draw_ms: med('draw_ms'),
                     explain_ms: med('explain_ms'), explain_ms_per_face: med('explain_ms_per_face') } };
}, seconds * 1000);
const total = sizes.reduce((a, [, n]) => a + n, 0);
console.log(JSON.stringify({ startup_s, processed_fps: r.fps, ui_fps: r.ui_fps, frames: r.frames, faces: r.faces,
                             median_ms: r.median, first_load_bytes: total,
                             files: Object.fromEntries(sizes.map(([u, n]) => [u.replace(origin, ''), n])) }, null, 2));
await ctx.close();
server.kill();
