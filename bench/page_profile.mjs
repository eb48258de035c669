// Where the live page's main thread spends its time: a V8 CPU profile of the page (self time per function,
// JavaScript and WebAssembly) over a few seconds of the fake camera, or with --trace Chromium's trace events
// summed per thread and event (e.g. how long the main thread waits for the GPU process).
//   node bench/page_profile.mjs [--seconds 6] [--trace] [--width 1100 --height 700]
// WebAssembly functions show as wasm-function[N] unless index.wasm was linked with --profiling-funcs (append it to
// build/wasm/web/CMakeFiles/ferkit_web.dir/link.txt's em++ line and re-run it). Needs build/wasm/dist and
// build/release (make_y4m). Reports; asserts nothing.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve, launch } from '../tests/web/helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const seconds = Number(opt('--seconds', 6));
const work = mkdtempSync(path.join(tmpdir(), 'ferkit-profile-'));
const clip = path.join(work, 'clip.y4m');
execFileSync(path.join(root, 'build/release/tests/make_y4m'),
             ['/usr/lib/python3/dist-packages/skimage/data/astronaut.png', clip, '640', '480', '60']);
const server = await serve(path.join(root, 'build/wasm/dist'));
const { ctx, page } = await launch(chromium, work, {
  viewport: { width: Number(opt('--width', 1100)), height: Number(opt('--height', 700)) },
  args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${clip}`],
});
const top = (map, n) => [...map].sort((a, b) => b[1] - a[1]).slice(0, n)
  .map(([k, us]) => `${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`).join('\n');
try {
  await page.goto(`${server.url}/`);
  await page.waitForFunction(() => window.ferkit && window.ferkit.latest && window.ferkit.latest.faces.length > 0,
                             null, { timeout: 120000 });
  await page.waitForTimeout(2000);
  const cdp = await ctx.newCDPSession(page);
  const frame = () => page.evaluate(() => window.ferkit.latest.frame.index);
  const f0 = await frame();
  if (args.includes('--trace')) {
    const events = [];
    cdp.on('Tracing.dataCollected', (d) => events.push(...d.value));
    const done = new Promise((resolve) => cdp.on('Tracing.tracingComplete', resolve));
    await cdp.send('Tracing.start', { categories: 'devtools.timeline,blink,cc,gpu,viz,toplevel', transferMode: 'ReportEvents' });
    await page.waitForTimeout(seconds * 1000);
    await cdp.send('Tracing.end');
    await done;
    const threads = new Map(), sums = new Map();
    for (const e of events) if (e.ph === 'M' && e.name === 'thread_name') threads.set(`${e.pid}:${e.tid}`, e.args.name);
    for (const e of events) {
      if (e.ph !== 'X' || !e.dur) continue;
      const k = `${threads.get(`${e.pid}:${e.tid}`) || e.tid} | ${e.name}`;
      sums.set(k, (sums.get(k) || 0) + e.dur);
    }
    console.log(`${await frame() - f0} frames in ${seconds} s; trace events summed per thread (nested events overlap):`);
    console.log(top(sums, 40));
  } else {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
    await cdp.send('Profiler.start');
    await page.waitForTimeout(seconds * 1000);
    const { profile } = await cdp.send('Profiler.stop');
    const nodes = new Map(profile.nodes.map((n) => [n.id, n])), self = new Map();
    profile.samples.forEach((id, i) => {
      const f = nodes.get(id).callFrame;
      const k = f.functionName || `(${f.url.split('/').pop() || 'native'})`;
      self.set(k, (self.get(k) || 0) + (profile.timeDeltas[i] || 0));
    });
    console.log(`${await frame() - f0} frames in ${seconds} s; main-thread self time:`);
    console.log(top(self, 30));
  }
} finally {
  await ctx.close();
  server.stop();
}
