// The JavaScript API (dist/ferkit.mjs) and its example page (dist/example.html) in Debian's Chromium (headless)
// via playwright-core, run with node's test runner:
//   node --test tests/web/api.test.mjs
// Needs build/wasm/dist (cmake --build --preset wasm --target ferkit_engine) and the photo
// /usr/lib/python3/dist-packages/skimage/data/astronaut.png (Debian python3-skimage). dist/ is served under a sub-path
// (/some/sub/path/) to check that nothing assumes the site root. Screenshots go to build/web-test/
// (FERKIT_SCREENSHOTS overrides).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serve, launch } from './helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = process.env.FERKIT_DIST || path.join(root, 'build', 'wasm', 'dist');
const shots = process.env.FERKIT_SCREENSHOTS || path.join(root, 'build', 'web-test');
const photo = '/usr/lib/python3/dist-packages/skimage/data/astronaut.png';
const work = mkdtempSync(path.join(tmpdir(), 'ferkit-api-'));
const SUBPATH = '/some/sub/path/';
const CLASSES = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];
mkdirSync(shots, { recursive: true });

let server, origin, page0;

// A fresh Chromium on the example page; records console errors, page errors and every request.
async function open(extraArgs = []) {
  const { ctx, page, log } = await launch(chromium, work, { viewport: { width: 1000, height: 900 }, args: extraArgs });
  await page.goto(page0);
  await page.waitForFunction(() => !document.getElementById('file').disabled ||
                                   document.getElementById('status').classList.contains('error'), null, { timeout: 60000 });
  assert.doesNotMatch(await page.textContent('#status'), /could not/, 'the example page did not start');
  return { ctx, page, log };
}

function offOrigin(log) {
  return log.requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith('blob:'));
}

function checkFace(face, what) {
  assert.deepEqual(Object.keys(face.box).sort(), ['h', 'w', 'x', 'y'], what);
  assert.ok(face.box.w > 20 && face.box.h > 20, `${what}: box ${JSON.stringify(face.box)}`);
  assert.deepEqual(Object.keys(face.probabilities), CLASSES, what);
  const p = Object.values(face.probabilities);
  const sum = p.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-4, `${what}: probabilities sum to ${sum}`);
  assert.ok(p.every((v) => v >= 0 && v <= 1), what);
  assert.equal(face.label, CLASSES[p.indexOf(Math.max(...p))], `${what}: label is not the argmax`);
}

before(async () => {
  for (const f of ['ferkit.mjs', 'ferkit-engine.mjs', 'ferkit-engine.wasm', 'example.html', 'example.mjs',
                   'assets/default.ferkit', 'assets/blazeface.ferkit'])
    assert.ok(existsSync(path.join(dist, f)), `${path.join(dist, f)} is missing (cmake --build --preset wasm --target ferkit_engine)`);
  assert.ok(existsSync(photo), `${photo} is missing (apt-get install python3-skimage)`);
  // dist/ served at SUBPATH of the origin.
  const site = path.join(work, 'site');
  mkdirSync(path.join(site, path.dirname(SUBPATH.slice(1, -1))), { recursive: true });
  symlinkSync(path.resolve(dist), path.join(site, SUBPATH.slice(1, -1)));
  server = await serve(site);
  origin = server.url;
  page0 = `${origin}${SUBPATH}example.html`;
});
after(() => server && server.stop());

test('example page sets the same Content-Security-Policy as the app and has no inline script', () => {
  const csp = (html) => (html.match(/http-equiv="Content-Security-Policy" content="([^"]+)"/) || [])[1];
  const example = readFileSync(path.join(dist, 'example.html'), 'utf8');
  const app = readFileSync(path.join(root, 'shell', 'index.html'), 'utf8');
  assert.ok(csp(example), 'no CSP meta tag');
  assert.equal(csp(example), csp(app));
  for (const m of example.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
    assert.match(m[1], /\bsrc="/, 'inline script');
    assert.equal(m[2].trim(), '', 'inline script');
  }
});

test('classify() on a canvas, ImageBitmap, ImageData, OffscreenCanvas and <img> of a photo', async () => {
  const { ctx, page, log } = await open();
  try {
    const r = await page.evaluate(async (bytes) => {
      const { loadFerkit } = await import(new URL('ferkit.mjs', location.href).href);
      const ferkit = await loadFerkit();
      const blob = new Blob([new Uint8Array(bytes)], { type: 'image/jpeg' });
      const bitmap = await createImageBitmap(blob);
      const canvas = document.createElement('canvas');
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
      canvas.getContext('2d').drawImage(bitmap, 0, 0);
      const offscreen = new OffscreenCanvas(bitmap.width, bitmap.height);
      offscreen.getContext('2d').drawImage(bitmap, 0, 0);
      const imageData = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      const img = new Image();
      img.src = URL.createObjectURL(blob);
      await img.decode();
      const t0 = performance.now();
      const faces = ferkit.classify(canvas);
      const ms = performance.now() - t0;
      const t1 = performance.now();
      ferkit.classify(canvas);
      const ms2 = performance.now() - t1;
      // A bad model is refused with the engine's message, and the current one keeps working.
      let badModel = null;
      try {
        ferkit.loadModel(new Uint8Array(1000).fill(7).buffer);
      } catch (e) {
        badModel = e.message;
      }
      const model = await (await fetch('assets/default.ferkit')).arrayBuffer();
      ferkit.loadModel(model);
      return {
        size: [bitmap.width, bitmap.height], faces, ms, ms2, info: ferkit.info, classNames: ferkit.classNames, badModel,
        bitmap: ferkit.classify(bitmap), imageData: ferkit.classify(imageData), offscreen: ferkit.classify(offscreen),
        img: ferkit.classify(img), after: ferkit.classify(canvas),
        crops: ferkit.classifyCrops(new Uint8Array(2 * 2304).fill(128)),
      };
    }, Array.from(readFileSync(photo)));
    console.log(`# ${r.faces.length} face(s) in ${r.size.join('x')} in ${r.ms.toFixed(1)} ms (first call), ${r.ms2.toFixed(1)} ms (second); model ${JSON.stringify(r.info)}`);
    assert.deepEqual(r.size, [512, 512]);
    assert.deepEqual(r.classNames, CLASSES);
    assert.ok(r.faces.length >= 1, 'no face found');
    r.faces.forEach((f, i) => checkFace(f, `face ${i}`));
    // astronaut.png's face: around (225, 125) (fer-train detect finds 173,73 103x103).
    assert.ok(r.faces.some((f) => Math.abs(f.box.x + f.box.w / 2 - 225) < 25 && Math.abs(f.box.y + f.box.h / 2 - 125) < 25),
              JSON.stringify(r.faces.map((f) => f.box)));
    // Every kind of source holds the same pixels: the same answer.
    // (Loading a model starts new tracks: the calls after it number the face anew, and keep that number.)
    const untracked = (faces) => faces.map(({ track, ...f }) => f);
    for (const k of ['bitmap', 'imageData', 'offscreen', 'img', 'after']) {
      assert.deepEqual(untracked(r[k]), untracked(r.faces), k);
      assert.deepEqual(r[k].map((f) => f.track), r.bitmap.map((f) => f.track), `${k}: tracks`);
    }
    assert.match(r.badModel || '', /magic/);
    assert.equal(r.crops.length, 2);
    assert.deepEqual(r.crops[0], r.crops[1]);
    assert.equal(r.crops[0].length, 7);
    assert.ok(r.info.params > 0 && typeof r.info.name === 'string');
    assert.deepEqual(offOrigin(log), [], 'requests outside the origin');
    assert.deepEqual(log.errors, [], 'console errors');
    // Everything the API fetched came from under the sub-path.
    const fetched = log.requests.filter((u) => u.startsWith(origin));
    assert.ok(fetched.some((u) => u.endsWith(`${SUBPATH}ferkit-engine.wasm`)), fetched.join('\n'));
    assert.ok(fetched.every((u) => u.startsWith(origin + SUBPATH)), fetched.join('\n'));
  } finally {
    await ctx.close();
  }
});

test('example page: a photo from the file input is drawn with its boxes and listed', async () => {
  const { ctx, page, log } = await open();
  try {
    await page.setInputFiles('#file', photo);
    await page.waitForSelector('#results li', { timeout: 30000 });
    const items = await page.$$eval('#results li', (els) => els.map((e) => e.textContent));
    assert.ok(items.length >= 1 && !/no face/.test(items[0]), items.join('\n'));
    assert.match(items[0], new RegExp(`^face 1 at .*: (${CLASSES.join('|')}) \\d+%`));
    assert.match(await page.textContent('#status'), /astronaut\.png: \d+ face/);
    assert.deepEqual(await page.$eval('#view', (c) => [c.width, c.height]), [512, 512]);
    // The box is drawn: yellow pixels on the face's outline.
    const yellow = await page.evaluate(() => {
      const c = document.getElementById('view'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 230 && d[i + 1] > 190 && d[i + 2] < 40) ++n;
      return n;
    });
    assert.ok(yellow > 100, `${yellow} box pixels`);
    await page.screenshot({ path: path.join(shots, 'example.png'), fullPage: true });
    assert.deepEqual(offOrigin(log), []);
    assert.deepEqual(log.errors, []);
  } finally {
    await ctx.close();
  }
});

// A fake-camera clip (Y4M, 4:2:0, limited-range luma) of the photo, decoded by the browser itself.
async function photoClip(page) {
  const { width, height, grey } = await page.evaluate(async (bytes) => {
    const bitmap = await createImageBitmap(new Blob([new Uint8Array(bytes)]));
    const c = new OffscreenCanvas(bitmap.width, bitmap.height), g = c.getContext('2d');
    g.drawImage(bitmap, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data, grey = [];
    for (let i = 0; i < d.length; i += 4) grey.push(Math.round(16 + (219 * (0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2])) / 255));
    return { width: c.width, height: c.height, grey };
  }, Array.from(readFileSync(photo)));
  const frame = Buffer.concat([Buffer.from('FRAME\n'), Buffer.from(grey), Buffer.alloc((width / 2) * (height / 2) * 2, 128)]);
  const file = path.join(work, 'photo.y4m');
  writeFileSync(file, Buffer.concat([Buffer.from(`YUV4MPEG2 W${width} H${height} F15:1 Ip A1:1 C420jpeg\n`), frame, frame]));
  return file;
}

test('example page: "Use camera" classifies the video (fake camera showing the photo)', async () => {
  const first = await open();
  let clip;
  try {
    clip = await photoClip(first.page);
  } finally {
    await first.ctx.close();
  }
  const { ctx, page, log } = await open(['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
                                         `--use-file-for-fake-video-capture=${clip}`]);
  try {
    await page.click('#camera');
    await page.waitForFunction(() => /^face 1 /.test(document.querySelector('#results li')?.textContent || ''), null,
                               { timeout: 30000 });
    assert.match(await page.textContent('#status'), /Camera running/);
    assert.equal(await page.textContent('#camera'), 'Stop camera');
    // classify(video) from the API directly, with smoothing.
    const faces = await page.evaluate(async () => {
      const { loadFerkit } = await import(new URL('ferkit.mjs', location.href).href);
      const ferkit = await loadFerkit();
      const video = Object.assign(document.createElement('video'), { muted: true, playsInline: true });
      video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
      await video.play();
      const all = [];
      for (let i = 0; i < 3; ++i) {
        all.push(ferkit.classify(video, { smooth: true }));
        await new Promise((r) => requestAnimationFrame(r));
      }
      video.srcObject.getTracks().forEach((t) => t.stop());
      return all;
    });
    for (const frame of faces) {
      assert.ok(frame.length >= 1, 'no face in the video frame');
      frame.forEach((f, i) => checkFace(f, `video face ${i}`));
    }
    await page.screenshot({ path: path.join(shots, 'example-camera.png'), fullPage: true });
    await page.click('#camera');
    assert.equal(await page.textContent('#camera'), 'Use camera');
    assert.deepEqual(offOrigin(log), []);
    assert.deepEqual(log.errors, []);
  } finally {
    await ctx.close();
  }
});
