// End-to-end tests of the web app in Debian's Chromium (headless, WebGL 2 on SwiftShader) via playwright-core,
// run with node's test runner:
//   node --test tests/web/app.test.mjs
// Needs build/wasm/dist (cmake --build --preset wasm), build/release (native fer-train and make_y4m) and the
// photo /usr/lib/python3/dist-packages/skimage/data/astronaut.png (Debian python3-skimage). Screenshots go to
// build/web-test/ (FERKIT_SCREENSHOTS overrides).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { bmp, viewed, launch, root, dist, native, shots, photo, workDir, cameraSetup } from './helpers.mjs';

const work = workDir('e2e');

let server, origin, clip;

// A fresh Chromium with the given extra flags; records console errors, page errors and every request.
async function open(extraArgs, initScript) {
  const { ctx, page, log } = await launch(chromium, work, { viewport: { width: 1100, height: 700 }, args: extraArgs });
  if (initScript) await page.addInitScript(initScript);
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.ferkit && window.ferkit.ready, null, { timeout: 90000 });
  return { ctx, page, log };
}

function offOrigin(log) {
  return log.requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith('blob:'));
}

// The native CLI's probabilities for a 48x48 crop.
function nativePredict(crop, name, tta = false) {
  const file = path.join(work, `${name}.bmp`);
  writeFileSync(file, bmp(crop));
  const out = execFileSync(path.join(native, 'native', 'fer-train'),
                           ['predict', '--json', ...(tta ? ['--tta'] : []), '--model',
                            path.join(root, 'assets', 'models', 'default.ferkit'), file]);
  return JSON.parse(out)[0].probabilities;
}

before(async () => {
  ({ server, origin, clip } = await cameraSetup(work));
});
after(() => server && server.stop());

test('page sets a same-origin Content-Security-Policy', async () => {
  const html = readFileSync(path.join(dist, 'index.html'), 'utf8');
  const m = html.match(/http-equiv="Content-Security-Policy" content="([^"]+)"/);
  assert.ok(m, 'no CSP meta tag');
  const csp = Object.fromEntries(m[1].split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));
  assert.deepEqual(csp['default-src'], ["'self'"]);
  assert.deepEqual(csp['connect-src'], ["'self'"]);
  assert.ok(!csp['script-src'].includes("'unsafe-inline'"), 'inline scripts allowed');
  for (const [k, v] of Object.entries(csp))
    for (const s of v) assert.ok(!/^https?:|^\*$/.test(s), `${k} allows ${s}`);
});

// The fake camera's face in a published result: astronaut.png's face, scaled into the 640x480 clip (512x512 ->
// 480x480, 80 px right): near (291, 117), 97 px.
function cameraFace(latest) {
  assert.equal(latest.frame.source, 'camera');
  assert.equal(latest.frame.width, 640);
  const face = latest.faces[0];
  assert.ok(Math.abs(face.box.x + face.box.w / 2 - 291) < 20 && Math.abs(face.box.y + face.box.h / 2 - 117) < 20,
            `face box ${JSON.stringify(face.box)}`);
  return face;
}

test('fake camera: the face is found and labelled, and the crop agrees with the native CLI', async () => {
  // Keeps the camera streams the page opens, to unplug the camera (end its track) below.
  const keepStreams = () => {
    const md = navigator.mediaDevices, orig = md.getUserMedia.bind(md);
    window.__streams = [];
    md.getUserMedia = async (c) => { const st = await orig(c); window.__streams.push(st); return st; };
  };
  const { ctx, page, log } = await open(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
                                         `--use-file-for-fake-video-capture=${clip}`], keepStreams);
  try {
    await page.waitForFunction(() => window.ferkit.latest && window.ferkit.latest.faces.length > 0, null, { timeout: 60000 });
    await page.waitForTimeout(1500);
    await page.screenshot({ path: path.join(shots, 'camera.png') });
    const r = await page.evaluate(() => {
      const latest = window.ferkit.latest;
      // Crop and probabilities of the same frame: read both before the next animation frame.
      return { latest, crop: Array.from(window.ferkit.crop(0)), camera: window.ferkit.camera };
    });
    assert.equal(r.camera.state, 'live');
    assert.equal(r.camera.frames, 'VideoFrame');  // WebCodecs: this Chromium has it
    const face = cameraFace(r.latest);
    const names = Object.keys(face.probabilities);
    assert.equal(names.length, 7);
    const best = names.reduce((a, b) => (face.smoothed[a] >= face.smoothed[b] ? a : b));
    assert.equal(face.label, best);
    assert.equal(r.latest.frame.flip_averaged, false);  // video: one view a frame
    const nat = nativePredict(viewed(face, r.crop), 'camera-crop');
    for (const k of names)
      assert.ok(Math.abs(nat[k] - face.probabilities[k]) <= 1e-5, `${k}: wasm ${face.probabilities[k]} native ${nat[k]}`);
    for (const t of ['grab_ms', 'detect_ms', 'classify_ms', 'draw_ms']) assert.ok(r.latest.timings[t] >= 0, t);

    // The camera unplugged mid-stream (its track ends; revoking the permission ends it the same way): a message,
    // the page stays (no reload), and Start camera brings the video back.
    await page.evaluate(() => {
      window.__sameDocument = true;
      const track = window.__streams[window.__streams.length - 1].getVideoTracks()[0];
      track.stop();
      track.dispatchEvent(new Event('ended'));
    });
    await page.waitForFunction(() => window.ferkit.camera.state === 'lost', null, { timeout: 10000 });
    assert.match(await page.textContent('#status'), /camera stopped/i);
    const lostAt = await page.evaluate(() => window.ferkit.latest.frame.index);
    await page.evaluate(() => window.ferkit.startCamera(0));
    await page.waitForFunction((i) => window.ferkit.camera.state === 'live' && window.ferkit.latest.frame.index > i + 5 &&
                                      window.ferkit.latest.faces.length > 0, lostAt, { timeout: 30000 });
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was reloaded');
    assert.deepEqual(offOrigin(log), [], 'requests outside the origin');
    assert.deepEqual(log.errors, [], 'console errors');
  } finally {
    await ctx.close();
  }
});

// The native CLI's saliency map of a 48x48 crop for a class.
function nativeExplain(crop, name, cls, method = 'gradcam') {
  const file = path.join(work, `${name}.bmp`);
  writeFileSync(file, bmp(crop));
  const out = execFileSync(path.join(native, 'native', 'fer-train'),
                           ['explain', '--json', '--face-crops', '--method', method, '--class', cls, '--out',
                            path.join(work, `${name}-maps`), '--model',
                            path.join(root, 'assets', 'models', 'default.ferkit'), file], { maxBuffer: 64 << 20 });
  return JSON.parse(out)[0].faces[0].map;
}

test('saliency overlay: each face gets the map of its label, the same as the native CLI\'s', async () => {
  const { ctx, page, log } = await open(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
                                         `--use-file-for-fake-video-capture=${clip}`]);
  try {
    await page.waitForFunction(() => window.ferkit.latest && window.ferkit.latest.faces.length > 0, null, { timeout: 60000 });
    assert.equal(await page.evaluate(() => window.ferkit.latest.why.overlay), false);
    assert.equal(await page.evaluate(() => window.ferkit.latest.faces[0].why), null, 'a map without the overlay');
    await page.evaluate(() => window.ferkit.showWhy(true, 'gradcam'));
    await page.waitForFunction(() => window.ferkit.latest.why.overlay && window.ferkit.latest.faces.length > 0 &&
                                     window.ferkit.latest.faces[0].why !== null, null, { timeout: 20000 });
    await page.setViewportSize({ width: 1100, height: 940 });  // tall enough for the panel's per-expression maps
    await page.waitForTimeout(1500);
    await page.screenshot({ path: path.join(shots, 'why.png') });
    const r = await page.evaluate(() => {
      const latest = window.ferkit.latest;  // the map, the crop and the label of the same frame
      const map = window.ferkit.explain(0);
      const sad = window.ferkit.explain(0, { method: 'gradient-x-input', class: 'sad' });
      return { latest, crop: Array.from(window.ferkit.crop(0)), map: Array.from(map), label: map.label,
               sad: Array.from(sad), sadLabel: sad.label, none: window.ferkit.explain(9) };
    });
    const face = cameraFace(r.latest);
    assert.equal(face.why, face.label, 'the overlay explains the label shown');
    assert.equal(r.label, face.label);
    assert.equal(r.latest.why.method, 'gradcam');
    assert.ok(r.latest.why.explain_ms > 0, `explain_ms ${r.latest.why.explain_ms}`);
    assert.equal(r.none, null);
    // The stated tolerance of native (AVX) against wasm (SIMD128) maps of these methods (tests/web/engine.test.mjs).
    for (const [what, wasm, nat] of [['Grad-CAM', r.map, nativeExplain(r.crop, 'why-crop', face.label)],
                                     ['gradient x input, sad', r.sad,
                                      nativeExplain(r.crop, 'why-sad', 'sad', 'gradient-x-input')]]) {
      assert.equal(wasm.length, 2304);
      assert.equal(Math.max(...wasm), 1, `${what}: not scaled to 1`);
      let worst = 0;
      wasm.forEach((v, i) => { worst = Math.max(worst, Math.abs(v - nat[i])); });
      assert.ok(worst <= 1e-4, `${what}: wasm and native maps differ by ${worst}`);
    }
    assert.equal(r.sadLabel, 'sad');
    // Off again: no maps.
    await page.evaluate(() => window.ferkit.showWhy(false));
    await page.waitForFunction(() => !window.ferkit.latest.why.overlay && window.ferkit.latest.faces.length > 0 &&
                                     window.ferkit.latest.faces[0].why === null, null, { timeout: 20000 });
    assert.deepEqual(offOrigin(log), [], 'requests outside the origin');
    assert.deepEqual(log.errors, [], 'console errors');
  } finally {
    await ctx.close();
  }
});

test('without WebCodecs (no VideoFrame) camera frames come through a 2-D canvas', async () => {
  const { ctx, page, log } = await open(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
                                         `--use-file-for-fake-video-capture=${clip}`], () => { delete window.VideoFrame; });
  try {
    await page.waitForFunction(() => window.ferkit.latest && window.ferkit.latest.faces.length > 0 &&
                                     window.ferkit.latest.frame.index > 5, null, { timeout: 60000 });
    const r = await page.evaluate(() => ({ latest: window.ferkit.latest, camera: window.ferkit.camera }));
    assert.equal(r.camera.frames, 'canvas');
    cameraFace(r.latest);
    assert.deepEqual(log.errors, [], 'console errors');
  } finally {
    await ctx.close();
  }
});

// Presses the first-run view's Start camera where the page says it is (a first visit: no camera permission, so the
// page waits for it).
async function pressStart(page) {
  await page.waitForFunction(() => window.ferkit.latest && window.ferkit.latest.ui.screen === 'first-run' &&
                                   window.ferkit.latest.ui.start_button, null, { timeout: 30000 });
  await page.waitForTimeout(300);
  const b = await page.evaluate(() => window.ferkit.latest.ui.start_button);
  await page.mouse.click(b.x + b.w / 2, b.y + b.h / 2);
}

test('camera denied: a clear message, and the page keeps working', async () => {
  const { ctx, page, log } = await open(['--use-fake-device-for-media-stream', '--deny-permission-prompts']);
  try {
    await pressStart(page);
    await page.waitForFunction(() => window.ferkit.camera.state === 'denied', null, { timeout: 30000 });
    const status = await page.textContent('#status');
    assert.match(status, /denied/i);
    assert.ok(await page.isVisible('#status'));
    await page.screenshot({ path: path.join(shots, 'denied.png') });
    assert.deepEqual(offOrigin(log), []);
  } finally {
    await ctx.close();
  }
});

test('no camera: an image dropped on the page runs through the same pipeline', async () => {
  const { ctx, page, log } = await open([]);
  try {
    await pressStart(page);
    await page.waitForFunction(() => ['no camera', 'denied', 'error'].includes(window.ferkit.camera.state), null,
                               { timeout: 30000 });
    assert.ok((await page.textContent('#status')).length > 0, 'no message about the missing camera');
    const bytes = Array.from(readFileSync(photo));
    await page.evaluate((b) => {
      const file = new File([new Uint8Array(b)], 'astronaut.png', { type: 'image/png' });
      const dt = new DataTransfer();
      dt.items.add(file);
      document.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, bytes);
    await page.waitForFunction(() => window.ferkit.latest && window.ferkit.latest.frame.source === 'image', null,
                               { timeout: 30000 });
    const r = await page.evaluate(() => ({ latest: window.ferkit.latest, crop: Array.from(window.ferkit.crop(0) || []) }));
    assert.equal(r.latest.frame.width, 512);
    assert.ok(r.latest.faces.length >= 1, 'no face found in the dropped photo');
    // A still image is classified once, with both views (flip averaging).
    assert.equal(r.latest.frame.flip_averaged, true);
    assert.equal(r.latest.faces[0].mirrored, false);
    const nat = nativePredict(r.crop, 'image-crop', true);
    for (const k of Object.keys(nat)) assert.ok(Math.abs(nat[k] - r.latest.faces[0].probabilities[k]) <= 1e-5, k);
    await page.screenshot({ path: path.join(shots, 'image.png') });
    assert.deepEqual(offOrigin(log), []);
    assert.deepEqual(log.errors, []);
  } finally {
    await ctx.close();
  }
});

test('a corrupt model file is refused with a message and the current model keeps working', async () => {
  const { ctx, page } = await open([]);
  try {
    const r = await page.evaluate(async () => {
      const bad = new Uint8Array(1000).fill(7);
      const res = await window.ferkit.loadModel(bad, 'broken.ferkit');
      return { res, status: document.getElementById('status').textContent };
    });
    assert.equal(r.res.ok, false);
    assert.match(r.res.error, /broken\.ferkit/);
    assert.match(r.res.error, /magic/);
    assert.match(r.status, /current model is kept/);
    // Still classifies.
    const bytes = Array.from(readFileSync(photo));
    await page.evaluate((b) => window.ferkit.openImage(new Blob([new Uint8Array(b)])), bytes);
    await page.waitForFunction(() => window.ferkit.latest && window.ferkit.latest.faces.length > 0, null, { timeout: 30000 });
  } finally {
    await ctx.close();
  }
});
