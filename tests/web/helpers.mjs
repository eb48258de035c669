// Shared by the browser and node tests in tests/web/.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

// Where the tests find things (environment overrides as ctest sets them), and a fresh work folder per test file.
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const dist = process.env.FERKIT_DIST || path.join(root, 'build', 'wasm', 'dist');
export const native = process.env.FERKIT_NATIVE || path.join(root, 'build', 'release');
export const shots = process.env.FERKIT_SCREENSHOTS || path.join(root, 'build', 'web-test');
export const photo = '/usr/lib/python3/dist-packages/skimage/data/astronaut.png';
// FER-2013, read from ../shared (never from the repository).
export const sharedCsv = path.join(root, '..', 'shared', 'data', 'fer2013', 'fer2013.csv.gz');

// Rows of one split of sharedCsv (0-based within the split, whose rows the file keeps together), in the order
// asked: [{label, pixels: 2304 numbers}].
export function ferFaces(usage, rows) {
  const text = gunzipSync(readFileSync(sharedCsv));
  const want = new Set(rows), found = new Map(), last = Math.max(...rows);
  let at = text.lastIndexOf(10, text.indexOf(usage)) + 1;
  for (let i = 0; i <= last; ++i) {
    const end = text.indexOf(10, at);
    const [label, pixels, u] = text.toString('latin1', at, end).trim().split(',');
    if (u !== usage) throw new Error(`${sharedCsv}: row ${i} of ${usage} is a ${u} row`);
    if (want.has(i)) found.set(i, { label: Number(label), pixels: pixels.split(' ').map(Number) });
    at = end + 1;
  }
  return rows.map((r) => found.get(r));
}
// For the fake-camera tests: checks that the builds and the photo are there, makes a 640x480 clip of the photo
// in work, and serves dist. Resolves to { server, origin, clip }.
export async function cameraSetup(work, needed = []) {
  for (const f of [path.join(dist, 'index.html'), photo, path.join(native, 'tests', 'make_y4m'), ...needed])
    if (!existsSync(f)) throw new Error(`${f} is missing (build the wasm and release presets; install python3-skimage)`);
  const clip = path.join(work, 'face.y4m');
  execFileSync(path.join(native, 'tests', 'make_y4m'), [photo, clip, '640', '480', '30']);
  const server = await serve(dist);
  return { server, origin: server.url, clip };
}

export function workDir(tag) {
  mkdirSync(shots, { recursive: true });
  return mkdtempSync(path.join(tmpdir(), `ferkit-${tag}-`));
}

// Serves dir on 127.0.0.1 at a free port: resolves to { url, stop }.
export function serve(dir) {
  return new Promise((resolve, reject) => {
    const p = spawn('python3', ['-u', '-m', 'http.server', '--bind', '127.0.0.1', '--directory', dir, '0'],
                    { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/port (\d+)/);
      if (m) resolve({ url: `http://127.0.0.1:${m[1]}`, stop: () => p.kill() });
    });
    p.stderr.on('data', () => {});
    p.on('exit', (c) => reject(new Error(`http.server exited ${c}: ${out}`)));
  });
}

// The 48x48 crop the model saw for a face of window.ferkit.latest: a mirrored frame (the page's "classify the
// mirror image every other frame", on by default with smoothing) classified the mirrored crop.
export function viewed(face, crop) {
  if (typeof face.mirrored !== 'boolean') throw new Error('the face has no "mirrored" flag');
  return face.mirrored ? crop.map((_, i) => crop[i - (i % 48) + 47 - (i % 48)]) : crop;
}

// A 48x48 grey crop as a 24-bit BMP (grey = R = G = B, so decoding gives the same bytes back).
export function bmp(crop, side = 48) {
  const row = Math.ceil(side * 3 / 4) * 4, size = 54 + row * side;
  const b = Buffer.alloc(size);
  b.write('BM', 0);
  b.writeUInt32LE(size, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(side, 18);
  b.writeInt32LE(side, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(row * side, 34);
  for (let y = 0; y < side; ++y)
    for (let x = 0; x < side; ++x) b.fill(crop[(side - 1 - y) * side + x], 54 + y * row + 3 * x, 54 + y * row + 3 * x + 3);
  return b;
}

// A fresh headless Chromium (Debian's /usr/bin/chromium, WebGL on SwiftShader, no background networking) with
// its profile under `work`; records console errors, page errors and every request URL in `log`. With a fake
// camera (and no --deny-permission-prompts) the profile has the camera permission, as a returning visitor's
// does, so the page starts the camera by itself; firstVisit: true leaves it out (the page then waits on its
// first-run view for Start camera).
export async function launch(chromium, work, { viewport, args = [], firstVisit = false, profile = null }) {
  const grant = !firstVisit && args.includes('--use-fake-device-for-media-stream') &&
                !args.includes('--deny-permission-prompts');
  const ctx = await chromium.launchPersistentContext(profile || mkdtempSync(path.join(work, 'profile-')), {
    executablePath: '/usr/bin/chromium', headless: true, viewport, permissions: grant ? ['camera'] : [],
    args: ['--no-sandbox', '--disable-gpu', '--enable-unsafe-swiftshader', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync', ...args],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  const log = { errors: [], requests: [] };
  page.on('console', (m) => { if (m.type() === 'error') log.errors.push(m.text()); });
  page.on('pageerror', (e) => log.errors.push(e.message));
  page.on('request', (r) => log.requests.push(r.url()));
  return { ctx, page, log };
}

// node:test options that skip a test for `reason` (saying so), or run it when reason is falsy. With
// FERKIT_SKIP_EXIT_CODE set (ctest), a run that skipped something and failed nothing exits with that code.
let skipped = 0;
process.on('exit', () => {
  if (skipped && !process.exitCode && process.env.FERKIT_SKIP_EXIT_CODE) process.exitCode = Number(process.env.FERKIT_SKIP_EXIT_CODE);
});
export function skipIf(reason) {
  if (reason) {
    ++skipped;
    console.log(`# SKIPPED: ${reason}`);
  }
  return { skip: reason || false };
}
