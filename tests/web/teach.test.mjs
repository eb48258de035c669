// "Teach it your face" end to end in headless Chromium with a fake camera (a clip made from a real photo):
// capture samples of one expression, fine-tune in the page (worker), the prediction moves toward it; a reload
// restores samples and model from IndexedDB; the downloaded model gives the same probabilities in the native CLI;
// a corrupt model is refused while the current one keeps working; and no request leaves the page's origin.
//   node --test tests/web/teach.test.mjs
// Needs build/wasm/dist, build/release (fer-train, make_y4m) and Debian python3-skimage's astronaut.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { bmp, launch, root, dist, native, shots, photo, workDir, cameraSetup } from './helpers.mjs';

const work = workDir('teach');
const SURPRISE = 5;

let server, origin, clip;
before(async () => {
  ({ server, origin, clip } = await cameraSetup(work, [path.join(dist, 'finetune-worker.mjs')]));
});
after(() => server && server.stop());

// The first face's crop and raw probabilities, from one and the same unmirrored frame (with smoothing, every
// other frame classifies the mirrored face: Advanced > "Classify the mirror image every other frame"), so frames
// compare.
const face = (page) => page.evaluate(async () => {
  for (let i = 0; i < 60; ++i) {
    const l = window.ferkit.latest;
    if (l && l.faces.length && !l.faces[0].mirrored)
      return { probs: l.faces[0].probabilities, crop: Array.from(window.ferkit.crop(0)) };
    await new Promise((r) => requestAnimationFrame(r));
  }
  return null;
});

test('capture, fine-tune, reload, download: the page learns an expression and keeps it', { timeout: 600000 }, async () => {
  const { ctx, page, log } = await launch(chromium, work, {
    viewport: { width: 1100, height: 900 },
    args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${clip}`],
  });
  try {
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => window.ferkit && window.ferkit.ready && window.ferkit.latest &&
                                     window.ferkit.latest.faces.length > 0, null, { timeout: 90000 });
    const base = await face(page);
    assert.equal((await page.evaluate(() => window.ferkit.latest.teach.total)), 0, 'a fresh profile has no samples');

    // Keys 1-7 capture; 6 is surprise (the fake camera's astronaut smiles: the model reads her as happy).
    await page.locator('canvas').click({ position: { x: 5, y: 5 } });
    for (let i = 0; i < 12; i++) {
      await page.keyboard.press('6');
      await page.waitForTimeout(60);
    }
    await page.waitForFunction(() => window.ferkit.latest.teach.samples[5] === 12, null, { timeout: 10000 });

    // Fine-tune in the worker; the camera view keeps updating meanwhile.
    const fpsDuring = [];
    assert.ok(await page.evaluate(() => window.ferkit.finetune({ epochs: 20, seed: 3 })), 'fine-tuning started');
    for (let i = 0; i < 600; i++) {
      const t = await page.evaluate(() => ({ state: window.ferkit.latest.teach.state, fps: window.ferkit.latest.fps }));
      if (t.state !== 'running') break;
      fpsDuring.push(t.fps);
      await page.waitForTimeout(200);
    }
    const teach = await page.evaluate(() => window.ferkit.latest.teach);
    assert.equal(teach.state, 'done', teach.message);
    assert.ok(teach.finetuned);
    assert.ok(teach.held_after >= teach.held_before, `held-back accuracy ${teach.held_before} -> ${teach.held_after}`);
    console.log(`fine-tuned on 12 samples in ${teach.seconds.toFixed(2)} s; page fps meanwhile: ${fpsDuring.map((f) => f.toFixed(0)).join(' ')}`);
    await page.waitForTimeout(500);
    const tuned = await face(page);
    assert.ok(tuned.probs.surprise > base.probs.surprise + 0.2,
              `surprise should rise after fine-tuning on surprise samples: ${base.probs.surprise} -> ${tuned.probs.surprise}`);
    // Tall enough to show the whole panel, fine-tuning plots included (the screenshot in README.md and docs/teaching.md).
    await page.setViewportSize({ width: 1100, height: 1400 });
    await page.waitForTimeout(800);
    await page.screenshot({ path: path.join(shots, 'teach.png') });
    await page.setViewportSize({ width: 1100, height: 900 });

    // The downloaded model, in the native CLI, on the page's crop: the page's probabilities.
    const [download] = await Promise.all([page.waitForEvent('download'), page.evaluate(() => window.ferkit.download())]);
    const modelFile = path.join(work, 'tuned.ferkit');
    await download.saveAs(modelFile);
    const cropFile = path.join(work, 'crop.bmp');
    writeFileSync(cropFile, bmp(Uint8Array.from(tuned.crop)));
    const cli = JSON.parse(execFileSync(path.join(native, 'native', 'fer-train'), ['predict', '--json', '--model', modelFile, cropFile]))[0];
    for (const [k, v] of Object.entries(tuned.probs))
      assert.ok(Math.abs(cli.probabilities[k] - v) <= 1e-5, `${k}: page ${v}, native ${cli.probabilities[k]}`);

    // A corrupt model file is refused with a message; the fine-tuned model keeps working.
    const bad = await page.evaluate(() => window.ferkit.loadModel(new Uint8Array(4096).fill(3), 'bad.ferkit'));
    assert.equal(bad.ok, false);
    assert.match(bad.error, /bad\.ferkit/);
    await page.waitForTimeout(300);
    const still = await face(page);
    for (const [k, v] of Object.entries(tuned.probs)) assert.ok(Math.abs(still.probs[k] - v) <= 1e-5, `${k} after a bad load`);

    // A reload restores samples and the fine-tuned model from IndexedDB.
    await page.evaluate(() => window.ferkit.saved());
    await page.reload();
    await page.waitForFunction(() => window.ferkit && window.ferkit.ready && window.ferkit.latest &&
                                     window.ferkit.latest.faces.length > 0, null, { timeout: 90000 });
    const restored = await page.evaluate(() => window.ferkit.latest.teach);
    assert.equal(restored.samples[SURPRISE], 12);
    assert.ok(restored.finetuned, 'the fine-tuned model is back after a reload');
    const again = await face(page);
    for (const [k, v] of Object.entries(tuned.probs))
      assert.ok(Math.abs(again.probs[k] - v) <= 1e-5, `${k} after reload: ${again.probs[k]} vs ${v}`);

    // Reset goes back to the default model (and the storage forgets the fine-tuned one).
    await page.evaluate(() => window.ferkit.resetModel());
    await page.waitForTimeout(300);
    const reset = await face(page);
    for (const [k, v] of Object.entries(base.probs)) assert.ok(Math.abs(reset.probs[k] - v) <= 1e-5, `${k} after reset`);

    // The whole session (load, camera, capture, fine-tune in a worker, download, reload) stayed on the page's origin,
    // under its same-origin Content-Security-Policy.
    const csp = await page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content');
    assert.match(csp, /default-src 'self'/);
    assert.doesNotMatch(csp, /https?:|\*/);
    const offOrigin = log.requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith('blob:'));
    assert.deepEqual(offOrigin, [], 'requests outside the page origin');
    assert.deepEqual(log.errors, [], 'console or page errors');
  } finally {
    await ctx.close();
  }
});

test('browser storage unavailable: a clear message, and capturing and fine-tuning still work', { timeout: 300000 }, async () => {
  const { ctx, page, log } = await launch(chromium, work, {
    viewport: { width: 1100, height: 900 },
    args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${clip}`],
  });
  try {
    await page.addInitScript(() => Object.defineProperty(window, 'indexedDB', { value: undefined }));
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => window.ferkit && window.ferkit.ready && window.ferkit.latest &&
                                     window.ferkit.latest.faces.length > 0, null, { timeout: 90000 });
    for (let i = 0; i < 4; i++) assert.ok(await page.evaluate(() => window.ferkit.capture(5)), 'captured');
    // window.ferkit.latest is the last frame's snapshot: under load the storage message can show a frame before
    // the fourth sample does.
    await page.waitForFunction(() => window.ferkit.latest.teach.storage !== 'ok' &&
                                     window.ferkit.latest.teach.samples[5] >= 4, null, { timeout: 10000 }).catch(() => {});
    const t = await page.evaluate(() => window.ferkit.latest.teach);
    assert.match(t.storage, /storage is unavailable/);
    assert.equal(t.samples[5], 4, 'the samples stay in the page');
    assert.ok(await page.evaluate(() => window.ferkit.finetune({ epochs: 2 })));
    await page.waitForFunction(() => window.ferkit.latest.teach.state === 'done', null, { timeout: 120000 });
    const offOrigin = log.requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith('blob:'));
    assert.deepEqual(offOrigin, []);
  } finally {
    await ctx.close();
  }
});
