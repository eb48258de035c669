// The detector in the page, as a camera user meets it (headless Chromium, fake camera): a clip of the astronaut
// (python3-skimage's astronaut.png) whose face moves about the frame, turns up to 30 degrees either way and grows
// and shrinks (90 to 210 pixels wide; tests/web/make_y4m.cpp --moving) shows a face in at least 99% of the processed
// frames, with one track id; the landmarks are drawn on request (screenshot landmarks.png, the README's).
//   node --test tests/web/tracking.test.mjs
// Needs build/wasm/dist, build/release (make_y4m) and Debian python3-skimage's astronaut.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { launch, shots, dist, native, workDir, serve } from './helpers.mjs';

const astronaut = '/usr/lib/python3/dist-packages/skimage/data/astronaut.png';
const work = workDir('tracking');
let server, clip;
before(async () => {
  for (const f of [path.join(dist, 'index.html'), astronaut, path.join(native, 'tests', 'make_y4m')])
    assert.ok(existsSync(f), `${f} is missing (build the wasm and release presets; install python3-skimage)`);
  clip = path.join(work, 'moving.y4m');
  // 90 frames at 15 frames/s (6 s, looping); the face's centre in the photo is (225, 125), 103 pixels wide.
  execFileSync(path.join(native, 'tests', 'make_y4m'), [astronaut, clip, '640', '480', '90', '--moving', '225', '125', '103']);
  server = await serve(dist);
});
after(() => server && server.stop());

test('a moving, turning, growing face is found in at least 99% of the processed frames, under one track', async () => {
  const { ctx, page, log } = await launch(chromium, work, {
    viewport: { width: 1100, height: 800 },
    args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${clip}`],
  });
  try {
    await page.goto(`${server.url}/`);
    await page.waitForFunction(() => window.ferkit && window.ferkit.ready && window.ferkit.latest &&
                                     window.ferkit.latest.frame.source === 'camera' && window.ferkit.latest.faces.length > 0,
                               null, { timeout: 90000 });
    // Every processed frame the page publishes over 8 s (the clip loops once and a bit): by its index, whether a face
    // was found in it (missed 0), shown at all, and by which tracks.
    const r = await page.evaluate(() => new Promise((resolve) => {
      const seen = new Map();
      const t0 = performance.now();
      const step = () => {
        const l = window.ferkit.latest;
        if (l && l.frame.source === 'camera' && !seen.has(l.frame.index))
          seen.set(l.frame.index, { found: l.faces.some((f) => f.missed === 0), shown: l.faces.length > 0,
                                    tracks: l.faces.map((f) => f.track), detect_ms: l.timings.detect_ms,
                                    passes: l.timings.detect_passes, roll: l.faces.length ? l.faces[0].roll : null });
        if (performance.now() - t0 < 8000) requestAnimationFrame(step);
        else resolve(Array.from(seen.values()));
      };
      requestAnimationFrame(step);
    }));
    const found = r.filter((f) => f.found).length, shown = r.filter((f) => f.shown).length;
    const tracks = new Set(r.flatMap((f) => f.tracks));
    const ms = r.map((f) => f.detect_ms).sort((a, b) => a - b);
    const rolls = r.filter((f) => f.roll !== null).map((f) => f.roll * 180 / Math.PI);
    console.log(`# ${r.length} processed frames: a face found in ${found} (${(100 * found / r.length).toFixed(1)}%), shown in ` +
                `${shown}; tracks ${[...tracks].join(', ')}; detection ${ms[ms.length >> 1].toFixed(2)} ms median ` +
                `(${Math.max(...r.map((f) => f.passes))} passes at most); roll ${Math.min(...rolls).toFixed(0)} to ` +
                `${Math.max(...rolls).toFixed(0)} degrees`);
    assert.ok(r.length >= 60, `only ${r.length} frames processed in 8 s`);
    assert.ok(found >= 0.99 * r.length, `a face in ${found} of ${r.length} frames`);
    assert.equal(tracks.size, 1, `tracks ${[...tracks]}`);
    assert.ok(Math.min(...rolls) < -20 && Math.max(...rolls) > 20, `the face's roll did not follow the turn: ${rolls}`);

    // The landmarks, on request: drawn in the detector's colour on the face (a screenshot for the README).
    await page.evaluate(() => window.ferkit.showLandmarks(true));
    await page.waitForTimeout(700);
    await page.screenshot({ path: path.join(shots, 'landmarks.png') });
    assert.deepEqual(log.errors, [], 'console or page errors');
  } finally {
    await ctx.close();
  }
});
