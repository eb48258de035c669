// The npm package (build/wasm/npm/ferkit-<version>.tgz, target ferkit_npm, scripts/pack.sh) as a user gets it:
// installed with `npm install ./ferkit-<version>.tgz` into an empty folder (offline: it has no dependencies), then
//   - under node: classifies a photo's faces with the native CLI's probabilities (fer-train detect) to 1e-5;
//   - in headless Chromium, served from that folder with a bare import map (no bundler): classify() on a video
//     element (the fake camera showing the photo), and inside a module Web Worker;
//   - bundled by Vite and by esbuild (dev dependencies) with no configuration: no node module in the bundle, and
//     the app classifies under the app's Content-Security-Policy (shell/index.html's);
//   - tsc --noEmit checks the declarations against web/npm/example.ts (browser) and example-node.ts (node).
// Run: node --test tests/web/npm.test.mjs (ctest web.Npm). Needs the wasm build, Debian's chromium, npm, and the
// root package's dev dependencies (npm ci). The node comparison needs build/release/native/fer-train, a C++
// compiler, stb (libstb-dev) and the photo (opencv-doc); without them it is skipped, saying why (exit code 77
// under ctest when something was skipped and nothing failed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { root, dist, native, photo, workDir, serve, launch, skipIf } from './helpers.mjs';

const work = workDir('npm');
const app = path.join(work, 'app');  // the empty folder the package is installed into
const pkg = path.join(app, 'node_modules', 'ferkit');
const bin = (name) => path.join(root, 'node_modules', '.bin', name);
const fertrain = path.join(native, 'native', 'fer-train');
const CLASSES = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];
const CSP = readFileSync(path.join(root, 'shell', 'index.html'), 'utf8').match(/http-equiv="Content-Security-Policy" content="([^"]+)"/)[1];
const version = readFileSync(path.join(root, 'CMakeLists.txt'), 'utf8').match(/project\(ferkit VERSION (\S+)/)[1];
const tarball = process.env.FERKIT_TARBALL || path.join(root, 'build', 'wasm', 'npm', `ferkit-${version}.tgz`);


function checkFace(face, what) {
  assert.deepEqual(Object.keys(face.box).sort(), ['h', 'w', 'x', 'y'], what);
  assert.deepEqual(Object.keys(face.probabilities), CLASSES, what);
  const p = Object.values(face.probabilities);
  assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-4, `${what}: probabilities ${p}`);
  assert.equal(face.label, CLASSES[p.indexOf(Math.max(...p))], `${what}: label is not the argmax`);
  assert.equal(Object.keys(face.crop).length, 2304, `${what}: crop`);
}
// astronaut.png's face is around (225, 125) (fer-train detect finds 173,73 103x103).
function hasPhotoFace(faces, what) {
  assert.ok(faces.some((f) => Math.abs(f.box.x + f.box.w / 2 - 225) < 25 && Math.abs(f.box.y + f.box.h / 2 - 125) < 25),
            `${what}: no face near (225, 125): ${JSON.stringify(faces.map((f) => f.box))}`);
}

before(() => {
  assert.ok(existsSync(tarball), `${tarball} is missing (scripts/pack.sh, or cmake --build --preset wasm --target ferkit_npm)`);
  for (const tool of ['tsc', 'esbuild', 'vite'])
    assert.ok(existsSync(bin(tool)), `${bin(tool)} is missing (npm ci in ${root}: the dev dependencies)`);
  assert.ok(existsSync(photo), `${photo} is missing (apt-get install python3-skimage)`);
  mkdirSync(app);
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'ferkit-npm-test', private: true, type: 'module' }));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--silent', tarball], { cwd: app, stdio: 'pipe' });
  assert.ok(existsSync(path.join(pkg, 'package.json')), 'npm install left no node_modules/ferkit');
  cpSync(photo, path.join(app, 'photo.png'));
});

test('the package: its files, exports, types, licence and notices; the version is CMake\'s project version', () => {
  const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).trim().split('\n').sort();
  assert.deepEqual(files, ['LICENSE', 'README.md', 'THIRD_PARTY_NOTICES', 'assets/blazeface.ferkit', 'assets/default.ferkit',
                           'ferkit-api.d.ts', 'ferkit-api.mjs', 'ferkit-engine.mjs', 'ferkit-engine.wasm',
                           'ferkit-node.d.ts', 'ferkit-node.mjs', 'ferkit.d.ts', 'ferkit.mjs', 'package.json']
    .map((f) => `package/${f}`));
  const json = JSON.parse(readFileSync(path.join(pkg, 'package.json'), 'utf8'));
  assert.equal(json.name, 'ferkit');
  assert.equal(json.version, version);
  assert.equal(path.basename(tarball), `ferkit-${version}.tgz`);
  assert.equal(json.type, 'module');
  assert.deepEqual(json.exports['.'], { node: { types: './ferkit-node.d.ts', default: './ferkit-node.mjs' },
                                        default: { types: './ferkit.d.ts', default: './ferkit.mjs' } });
  assert.equal(json.types, './ferkit.d.ts');
  assert.equal(json.license, 'MIT');
  assert.equal(readFileSync(path.join(pkg, 'LICENSE'), 'utf8'), readFileSync(path.join(root, 'LICENSE'), 'utf8'));
  assert.ok(!json.dependencies, 'the package has dependencies');
  const notices = readFileSync(path.join(pkg, 'THIRD_PARTY_NOTICES'), 'utf8');
  assert.ok(notices.includes(readFileSync(path.join(root, 'assets', 'detector', 'LICENSE-blazeface.txt'), 'utf8')),
            'THIRD_PARTY_NOTICES lacks the face detector\'s licence');
  assert.match(notices, /Eigen[\s\S]*Mozilla Public License 2\.0/);
  // The shipped model, detector and engine are the repository's and dist's.
  for (const [mine, theirs] of [['assets/default.ferkit', path.join(root, 'assets', 'models', 'default.ferkit')],
                                ['assets/blazeface.ferkit', path.join(root, 'assets', 'detector', 'blazeface.ferkit')],
                                ['ferkit-engine.wasm', path.join(dist, 'ferkit-engine.wasm')]])
    assert.ok(readFileSync(path.join(pkg, mine)).equals(readFileSync(theirs)), `${mine} differs from ${theirs}`);
  // The browser engine has no node code path (that is ferkit-node.mjs's job).
  assert.doesNotMatch(readFileSync(path.join(pkg, 'ferkit-engine.mjs'), 'utf8'), /require\(|node:|__dirname/);
});

// The photo as an RGBA frame of its colours, as the native tools read it (tests/web/decode_rgba.cpp, as
// engine.test.mjs does).
function colourFrame() {
  if (!existsSync('/usr/include/stb/stb_image.h')) return { reason: '/usr/include/stb/stb_image.h is missing (libstb-dev)' };
  const decoder = path.join(work, 'decode_rgba'), out = path.join(work, 'photo.rgba');
  try {
    execFileSync(process.env.CXX || 'c++', ['-O2', '-I/usr/include/stb', path.join(root, 'tests', 'web', 'decode_rgba.cpp'),
                                            '-o', decoder], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    return { reason: `could not build tests/web/decode_rgba.cpp: ${e.message.split('\n')[0]}` };
  }
  execFileSync(decoder, [photo, out]);
  return { file: out };
}
const noNative = existsSync(fertrain) ? false
  : `${fertrain} is missing (build it: cmake --preset release && cmake --build --preset release)`;
const frame = noNative ? {} : colourFrame();

test('under node, import \'ferkit\' is ferkit-node.mjs and classifies the photo as fer-train detect does',
     skipIf(noNative || frame.reason), () => {
  // A script in the install folder, so that 'ferkit' resolves as it does for a user (the "node" export).
  writeFileSync(path.join(app, 'node-check.mjs'), `
    import { readFileSync } from 'node:fs';
    import { loadFerkit } from 'ferkit';
    const b = readFileSync(process.argv[2]);
    const frame = { width: b.readUInt32LE(0), height: b.readUInt32LE(4), data: new Uint8Array(b.buffer, b.byteOffset + 8, b.length - 8) };
    const ferkit = await loadFerkit();
    const faces = ferkit.classify(frame, { still: true }).map((f) => ({ ...f, crop: Array.from(f.crop) }));
    console.log(JSON.stringify({ entry: import.meta.resolve('ferkit'), classNames: ferkit.classNames, faces,
                                 crops: ferkit.classifyCrops(Uint8Array.from(faces.flatMap((f) => f.crop))) }));`);
  const r = JSON.parse(execFileSync(process.execPath, ['node-check.mjs', frame.file], { cwd: app, encoding: 'utf8' }));
  assert.ok(r.entry.endsWith('/node_modules/ferkit/ferkit-node.mjs'), r.entry);
  assert.deepEqual(r.classNames, CLASSES);
  const nat = JSON.parse(execFileSync(fertrain, ['detect', '--json', '--model', path.join(pkg, 'assets', 'default.ferkit'),
                                                 '--detector', path.join(pkg, 'assets', 'blazeface.ferkit'), photo]))[0];
  assert.ok(r.faces.length >= 1, 'no face found');
  hasPhotoFace(r.faces, 'node');
  assert.equal(r.faces.length, nat.faces.length, 'face count');
  r.faces.forEach((f, i) => {
    checkFace(f, `face ${i}`);
    const box = [f.box.x, f.box.y, f.box.w, f.box.h];
    // wasm and native: engine.test.mjs's tolerances (0.05 pixel, 1e-2).
    box.forEach((v, k) => assert.ok(Math.abs(v - nat.faces[i].box[k]) < 0.05, `face ${i} box ${box} vs ${nat.faces[i].box}`));
    CLASSES.forEach((k) => assert.ok(Math.abs(f.probabilities[k] - nat.faces[i].probabilities[k]) <= 1e-2,
                                     `face ${i} ${k}: package ${f.probabilities[k]}, native ${nat.faces[i].probabilities[k]}`));
    assert.equal(f.label, nat.faces[i].label);
    // classifyCrops of the face's own crop: the same probabilities.
    CLASSES.forEach((k, c) => assert.ok(Math.abs(r.crops[i][c] - f.probabilities[k]) <= 1e-6, `face ${i} crop ${k}`));
  });
});

test('under node, a missing file or a bad model is refused with a message naming it', () => {
  writeFileSync(path.join(app, 'node-errors.mjs'), `
    import { writeFileSync } from 'node:fs';
    import { loadFerkit } from 'ferkit';
    const messages = [];
    writeFileSync('bad.ferkit', new Uint8Array(1000).fill(7));
    for (const options of [{ modelUrl: 'nowhere.ferkit' }, { detectorUrl: new URL('file:///nowhere/x.ferkit') },
                           { baseUrl: 'https://example.com/ferkit/' }, { modelUrl: 'bad.ferkit' }])
      messages.push(await loadFerkit(options).then(() => 'loaded', (e) => e.message));
    console.log(JSON.stringify(messages));`);
  const m = JSON.parse(execFileSync(process.execPath, ['node-errors.mjs'], { cwd: app, encoding: 'utf8' }));
  assert.ok(m[0].includes(`model ${path.join(app, 'nowhere.ferkit')}`), m[0]);
  assert.match(m[1], /face detector \/nowhere\/x\.ferkit/, m[1]);
  assert.match(m[2], /https:\/\/example\.com\/ferkit\/ must be a file path or file: URL/, m[2]);
  assert.match(m[3], /magic/, m[3]);
});

// A fake-camera clip (Y4M 4:2:0, limited-range luma) of the photo, decoded by the browser; the same size as the photo.
async function photoClip(page) {
  const { width, height, grey } = await page.evaluate(async () => {
    const bitmap = await createImageBitmap(await (await fetch('photo.png')).blob());
    const c = new OffscreenCanvas(bitmap.width, bitmap.height), g = c.getContext('2d');
    g.drawImage(bitmap, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data, grey = [];
    for (let i = 0; i < d.length; i += 4) grey.push(Math.round(16 + (219 * (0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2])) / 255));
    return { width: c.width, height: c.height, grey };
  });
  const frame = Buffer.concat([Buffer.from('FRAME\n'), Buffer.from(grey), Buffer.alloc((width / 2) * (height / 2) * 2, 128)]);
  const file = path.join(work, 'photo.y4m');
  writeFileSync(file, Buffer.concat([Buffer.from(`YUV4MPEG2 W${width} H${height} F15:1 Ip A1:1 C420jpeg\n`), frame, frame]));
  return file;
}

// Opens url in a fresh Chromium; fails on console errors, page errors and requests outside the origin.
async function inChromium(url, args, fn) {
  const { ctx, page, log } = await launch(chromium, work, { viewport: { width: 800, height: 600 }, args });
  try {
    await page.goto(url);
    const result = await fn(page);
    const origin = new URL(url).origin;
    assert.deepEqual(log.requests.filter((u) => !u.startsWith(origin + '/') && !/^(data|blob):/.test(u)), [], 'requests outside the origin');
    assert.deepEqual(log.errors, [], 'console errors');
    return result;
  } finally {
    await ctx.close();
  }
}

// In the page: the photo's ImageBitmap classified by window.ferkit (the app's loadFerkit() result).
const classifyPhoto = () => window.ferkitReady.then(async (ferkit) => {
  const bitmap = await createImageBitmap(await (await fetch('photo.png')).blob());
  return ferkit.classify(bitmap).map((f) => ({ ...f, crop: Array.from(f.crop) }));
});
let reference = null;  // the photo's faces in the import-map page, for the other pages to match

let server;
after(() => server && server.stop());

test('a page served from the install folder with a bare import map (no bundler): classify() on a video element ' +
     'and inside a Web Worker, under a strict CSP', async () => {
  // An import map is an inline script: the CSP allows it by its hash (no 'unsafe-inline').
  const importMap = JSON.stringify({ imports: { ferkit: './node_modules/ferkit/ferkit.mjs' } });
  const hash = createHash('sha256').update(importMap).digest('base64');
  const csp = CSP.replace("script-src 'self'", `script-src 'self' 'sha256-${hash}'`);
  assert.notEqual(csp, CSP);
  writeFileSync(path.join(app, 'index.html'), `<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${csp}"><title>ferkit</title>
<link rel="icon" href="data:,"><script type="importmap">${importMap}</script><script type="module" src="page.mjs"></script>
</head><body></body></html>`);
  writeFileSync(path.join(app, 'page.mjs'), "import { loadFerkit } from 'ferkit';\nwindow.ferkitReady = loadFerkit();\n");
  // Import maps do not reach workers: the worker imports the package by its path.
  writeFileSync(path.join(app, 'worker.mjs'), `import { loadFerkit } from './node_modules/ferkit/ferkit.mjs';
    const ready = loadFerkit();
    onmessage = async (e) => {
      try {
        const ferkit = await ready;
        postMessage({ faces: ferkit.classify(e.data).map((f) => ({ ...f, crop: Array.from(f.crop) })), name: ferkit.info.name });
      } catch (err) {
        postMessage({ error: String(err && err.message || err) });
      }
    };`);
  server = await serve(app);
  const url = `${server.url}/index.html`;
  const clip = await inChromium(url, [], photoClip);
  const r = await inChromium(url, ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
                                   `--use-file-for-fake-video-capture=${clip}`], async (page) => {
    const res = await page.evaluate(async () => {
      const ferkit = await window.ferkitReady;
      const video = Object.assign(document.createElement('video'), { muted: true, playsInline: true });
      video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true });
      await video.play();
      const frames = [];
      for (let i = 0; i < 3; ++i) {
        frames.push(ferkit.classify(video, { smooth: true }).map((f) => ({ ...f, crop: Array.from(f.crop) })));
        await new Promise((r) => requestAnimationFrame(r));
      }
      video.srcObject.getTracks().forEach((t) => t.stop());
      const bitmap = await createImageBitmap(await (await fetch('photo.png')).blob());
      const worker = new Worker('worker.mjs', { type: 'module' });
      const inWorker = await new Promise((resolve, reject) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.onerror = (e) => reject(new Error(`worker: ${e.message}`));
        worker.postMessage(bitmap);
      });
      worker.terminate();
      return { video: [video.videoWidth, video.videoHeight], frames, inWorker, name: ferkit.info.name };
    });
    res.main = await page.evaluate(classifyPhoto);
    return res;
  });
  assert.deepEqual(r.video, [512, 512]);
  r.frames.forEach((faces, i) => {
    assert.ok(faces.length >= 1, `video frame ${i}: no face`);
    faces.forEach((f, j) => checkFace(f, `video frame ${i} face ${j}`));
    hasPhotoFace(faces, `video frame ${i}`);
  });
  assert.equal(r.inWorker.error, undefined, r.inWorker.error);
  assert.equal(r.inWorker.name, r.name);
  assert.ok(r.main.length >= 1, 'no face in the photo');
  r.main.forEach((f, i) => checkFace(f, `photo face ${i}`));
  hasPhotoFace(r.main, 'photo');
  assert.deepEqual(r.inWorker.faces, r.main, 'the worker and the page see different faces in the same bitmap');
  reference = r.main;
});

// The small app both bundlers build: its own page (the app's CSP, a module script) and main.js importing 'ferkit'.
function writeApp(dir) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'index.html'), `<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${CSP}"><title>ferkit app</title>
<link rel="icon" href="data:,"><script type="module" src="./main.js"></script></head><body><p id="status">loading</p></body></html>`);
  writeFileSync(path.join(dir, 'main.js'), `import { loadFerkit } from 'ferkit';
window.ferkitReady = loadFerkit();
window.ferkitReady.then((f) => { document.getElementById('status').textContent = 'ready: ' + f.info.name; },
                        (e) => { document.getElementById('status').textContent = 'failed: ' + e.message; });
`);
}
const NODE_MODULES = /\b(node:|require\(|__dirname)|from\s*["'](fs|path|module|url)["']/;

async function appClassifies(dir, what) {
  cpSync(photo, path.join(dir, 'photo.png'));
  const s = await serve(dir);
  try {
    const faces = await inChromium(`${s.url}/index.html`, [], async (page) => {
      await page.waitForFunction(() => !/loading/.test(document.getElementById('status').textContent), null, { timeout: 60000 });
      assert.match(await page.textContent('#status'), /^ready: /);
      return page.evaluate(classifyPhoto);
    });
    assert.ok(faces.length >= 1, `${what}: no face`);
    hasPhotoFace(faces, what);
    if (reference) assert.deepEqual(faces, reference, `${what}: not the import-map page's faces`);
  } finally {
    s.stop();
  }
}

test('Vite builds an app importing the package with no configuration; the app classifies under the CSP', async () => {
  const src = path.join(app, 'vite-app');
  writeApp(src);
  execFileSync(bin('vite'), ['build', '--logLevel', 'warn'], { cwd: src, stdio: 'pipe' });
  const out = path.join(src, 'dist');
  const emitted = readdirSync(path.join(out, 'assets'));
  for (const ext of ['.wasm', '.ferkit'])
    assert.ok(emitted.some((f) => f.endsWith(ext)), `Vite did not emit the package's ${ext}: ${emitted}`);
  assert.equal(emitted.filter((f) => f.endsWith('.ferkit')).length, 2, `Vite did not emit the model and the detector: ${emitted}`);
  for (const f of emitted.filter((f) => f.endsWith('.js')))
    assert.doesNotMatch(readFileSync(path.join(out, 'assets', f), 'utf8'), NODE_MODULES, `node code in ${f}`);
  assert.ok(readFileSync(path.join(out, 'index.html'), 'utf8').includes(CSP), 'the built page lost its CSP');
  await appClassifies(out, 'Vite app');
});

test('esbuild bundles it for the browser with no configuration and no node module; the app classifies', async () => {
  const esbuild = await import(path.join(root, 'node_modules', 'esbuild', 'lib', 'main.js'));
  const src = path.join(app, 'esbuild-app'), out = path.join(src, 'out');
  writeApp(src);
  const r = await esbuild.build({ entryPoints: [path.join(src, 'main.js')], bundle: true, format: 'esm', platform: 'browser',
                                  outdir: out, metafile: true, logLevel: 'silent' });
  assert.deepEqual([r.errors, r.warnings], [[], []]);
  const inputs = Object.keys(r.metafile.inputs);
  assert.ok(inputs.some((f) => f.endsWith('node_modules/ferkit/ferkit.mjs')), `the browser entry is not in the bundle: ${inputs}`);
  assert.ok(!inputs.some((f) => /ferkit-node/.test(f)), `ferkit-node.mjs is in the browser bundle: ${inputs}`);
  for (const [file, o] of Object.entries(r.metafile.outputs))
    assert.deepEqual(o.imports, [], `${file} imports ${JSON.stringify(o.imports)}`);
  assert.doesNotMatch(readFileSync(path.join(out, 'main.js'), 'utf8'), NODE_MODULES, 'node code in the bundle');
  // esbuild copies no file a module finds by new URL(..., import.meta.url): the app ships the package's engine and
  // assets beside its bundle, as docs/npm.md says.
  cpSync(path.join(pkg, 'ferkit-engine.wasm'), path.join(out, 'ferkit-engine.wasm'));
  cpSync(path.join(pkg, 'assets'), path.join(out, 'assets'), { recursive: true });
  writeFileSync(path.join(out, 'index.html'), readFileSync(path.join(src, 'index.html')));
  await appClassifies(out, 'esbuild app');
});

test('tsc --noEmit checks the declarations against the browser and node examples (web/npm/example*.ts)', () => {
  const compilerOptions = { target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, types: [] };
  const configs = {
    'tsconfig.browser.json': { compilerOptions: { ...compilerOptions, module: 'esnext', moduleResolution: 'bundler', lib: ['es2022', 'dom'] },
                               files: ['example.ts'] },
    'tsconfig.node.json': { compilerOptions: { ...compilerOptions, module: 'nodenext', moduleResolution: 'nodenext', lib: ['es2022'] },
                            files: ['example-node.ts'] },
  };
  for (const f of ['example.ts', 'example-node.ts']) cpSync(path.join(root, 'web', 'npm', f), path.join(app, f));
  for (const [name, config] of Object.entries(configs)) {
    writeFileSync(path.join(app, name), JSON.stringify(config));
    try {
      execFileSync(bin('tsc'), ['-p', name], { cwd: app, encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      assert.fail(`tsc -p ${name}:\n${e.stdout}${e.stderr}`);
    }
  }
  // The examples' @ts-expect-error lines are errors indeed: without them tsc fails.
  writeFileSync(path.join(app, 'example.ts'), readFileSync(path.join(app, 'example.ts'), 'utf8').replace(/\/\/ @ts-expect-error/g, '//'));
  assert.throws(() => execFileSync(bin('tsc'), ['-p', 'tsconfig.browser.json'], { cwd: app, stdio: 'pipe' }));
});
