// The JavaScript engine (dist/ferkit-engine.mjs + .wasm, web/engine.cpp) and its node wrapper dist/ferkit-node.mjs under
// node, no browser:
//   node --test tests/web/engine.test.mjs
// Needs build/wasm/dist (cmake --build --preset wasm --target ferkit_engine). The comparisons with the native
// CLI need build/release/native/fer-train (cmake --build --preset release); the photo test also needs a C++
// compiler and stb (Debian libstb-dev) for its decoder helper (tests/web/decode_rgba.cpp) and the photo
// /usr/share/doc/opencv-doc/examples/data/messi5.jpg (opencv-doc). Missing tools skip those tests, saying why;
// with FERKIT_SKIP_EXIT_CODE set (ctest), a run that skipped something and failed nothing exits with that code.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bmp, ferFaces, sharedCsv, skipIf } from './helpers.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = process.env.FERKIT_DIST || path.join(root, 'build', 'wasm', 'dist');
const native = process.env.FERKIT_NATIVE || path.join(root, 'build', 'release');
const fertrain = path.join(native, 'native', 'fer-train');
const modelPath = path.join(root, 'assets', 'models', 'default.ferkit');
const detectorPath = path.join(root, 'assets', 'detector', 'blazeface.ferkit');
// A photo with a face that the whole-frame pass finds (a fifth of the frame wide), and one whose face only the
// still-image search does (35 pixels in 548).
const photo = '/usr/lib/python3/dist-packages/skimage/data/astronaut.png';
const smallFacePhoto = '/usr/share/doc/opencv-doc/examples/data/messi5.jpg';
const work = mkdtempSync(path.join(tmpdir(), 'ferkit-engine-'));
const CLASSES = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];

const noNative = existsSync(fertrain) ? false
  : `${fertrain} is missing (build it: cmake --preset release && cmake --build --preset release)`;

let M, model, detector;

// Copies bytes into wasm memory for the duration of fn(pointer).
function withBytes(bytes, fn) {
  const p = M._malloc(Math.max(bytes.length, 1));
  try {
    M.HEAPU8.set(bytes, p);
    return fn(p);
  } finally {
    M._free(p);
  }
}
function create(modelBytes, detectorBytes) {
  return withBytes(modelBytes, (m) => (detectorBytes
    ? withBytes(detectorBytes, (d) => M._fk_create(m, modelBytes.length, d, detectorBytes.length))
    : M._fk_create(m, modelBytes.length, 0, 0)));
}
const lastError = () => M.UTF8ToString(M._fk_last_error());

// n crops (n * 2304 bytes) -> n arrays of 7 probabilities, through fk_buffer / fk_classify_crops.
function classifyCrops(crops) {
  const n = crops.length / 2304;
  const out = M._malloc(n * 7 * 4);
  try {
    const buf = M._fk_buffer(crops.length);
    M.HEAPU8.set(crops, buf);
    M._fk_classify_crops(n, out);
    assert.equal(lastError(), '');
    return Array.from({ length: n }, (_, i) => Array.from(M.HEAPF32.subarray((out >> 2) + 7 * i, (out >> 2) + 7 * i + 7)));
  } finally {
    M._free(out);
  }
}

// Deterministic synthetic 48x48 grey crops: gradients, a checkerboard, rings, a crude face, LCG noise.
function syntheticCrops() {
  const patterns = [
    (x, y) => (x * 255) / 47,
    (x, y) => 255 - (y * 255) / 47,
    (x, y) => (((x >> 3) + (y >> 3)) & 1 ? 230 : 20),
    (x, y) => 128 + 127 * Math.sin(Math.hypot(x - 23.5, y - 23.5) / 2.5),
    (x, y) => {  // bright oval, dark eyes and mouth
      const inFace = ((x - 23.5) / 18) ** 2 + ((y - 24) / 22) ** 2 < 1;
      const eye = Math.hypot(x - 16, y - 18) < 3.5 || Math.hypot(x - 31, y - 18) < 3.5;
      const mouth = Math.abs(y - 34) < 2 && Math.abs(x - 23.5) < 8;
      return !inFace ? 40 : eye || mouth ? 30 : 200;
    },
  ];
  let s = 12345;
  patterns.push(() => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) & 255);
  const crops = new Uint8Array(patterns.length * 2304);
  patterns.forEach((f, i) => {
    for (let y = 0; y < 48; ++y)
      for (let x = 0; x < 48; ++x) crops[i * 2304 + y * 48 + x] = Math.max(0, Math.min(255, Math.round(f(x, y))));
  });
  return crops;
}

function assertClose(wasm, nat, what) {
  CLASSES.forEach((k, c) => {
    assert.ok(Math.abs(wasm[c] - nat[k]) <= 1e-5, `${what} ${k}: wasm ${wasm[c]} native ${nat[k]}`);
  });
}

// faces from fk_results after fk_classify_rgba returned n
function results(n) {
  const r = M._fk_results() >> 2;
  return Array.from({ length: n }, (_, i) => {
    const f = Array.from(M.HEAPF32.subarray(r + 31 * i, r + 31 * i + 31));  // web/engine.cpp's fk_classify_rgba
    return { box: f.slice(0, 4), score: f[4], probs: f.slice(5, 12), label: f[12], cropRegion: f.slice(13, 17),
             keypoints: f.slice(17, 29), track: f[29], missed: f[30] };
  });
}

// RGBA frame of the photo via tests/web/decode_rgba.cpp (built here: node has no image decoder).
let decoder = null;
function decodeReason() {
  if (!existsSync(photo)) return `${photo} is missing (apt-get install python3-skimage)`;
  if (!existsSync(smallFacePhoto)) return `${smallFacePhoto} is missing (apt-get install opencv-doc)`;
  if (!existsSync('/usr/include/stb/stb_image.h')) return '/usr/include/stb/stb_image.h is missing (libstb-dev)';
  try {
    decoder = path.join(work, 'decode_rgba');
    execFileSync(process.env.CXX || 'c++', ['-O2', '-I/usr/include/stb', path.join(root, 'tests', 'web', 'decode_rgba.cpp'),
                                            '-o', decoder], { stdio: ['ignore', 'ignore', 'pipe'] });
    return false;
  } catch (e) {
    return `could not build tests/web/decode_rgba.cpp with a C++ compiler: ${e.message.split('\n')[0]}`;
  }
}
function decode(file, grey) {
  const out = path.join(work, `${path.basename(file)}${grey ? '.grey' : ''}.rgba`);
  execFileSync(decoder, [file, out, ...(grey ? ['--grey'] : [])]);
  const b = readFileSync(out);
  return { width: b.readUInt32LE(0), height: b.readUInt32LE(4), data: new Uint8Array(b.buffer, b.byteOffset + 8, b.length - 8) };
}
// flags: 1 smooth, 2 still (web/engine.cpp)
function classifyFrame(frame, flags = 0) {
  const p = M._fk_buffer(frame.data.length);
  M.HEAPU8.set(frame.data, p);
  const n = M._fk_classify_rgba(frame.width, frame.height, flags);
  assert.ok(n >= 0, `fk_classify_rgba failed: ${lastError()}`);
  return results(n);
}

before(async () => {
  const engine = path.join(dist, 'ferkit-engine.mjs');
  assert.ok(existsSync(engine), `${engine} is missing (cmake --build --preset wasm --target ferkit_engine)`);
  const { default: createFerkitEngine } = await import(pathToFileURL(engine).href);
  M = await createFerkitEngine();
  model = new Uint8Array(readFileSync(modelPath));
  detector = new Uint8Array(readFileSync(detectorPath));
  assert.equal(create(model, detector), 1, lastError());
});

test('the engine exports the documented functions and describes its model', () => {
  for (const f of ['fk_create', 'fk_last_error', 'fk_buffer', 'fk_classify_rgba', 'fk_results', 'fk_classify_crops',
                   'fk_face_crop', 'fk_explain', 'fk_class_name', 'fk_num_params', 'fk_model_info', 'malloc', 'free'])
    assert.equal(typeof M[`_${f}`], 'function', f);
  assert.deepEqual(CLASSES.map((_, i) => M.UTF8ToString(M._fk_class_name(i))), CLASSES);
  assert.equal(M.UTF8ToString(M._fk_class_name(7)), '');
  const info = JSON.parse(M.UTF8ToString(M._fk_model_info()));
  assert.equal(typeof info.name, 'string');
  assert.ok(info.name.length > 0);
  assert.equal(info.params, M._fk_num_params());
  assert.ok(info.params > 1000 && info.macs > info.params, JSON.stringify(info));
  assert.deepEqual(info.classes, CLASSES);
  if ('accuracy' in info) assert.ok(info.accuracy > 0 && info.accuracy <= 1);
  assert.equal(lastError(), '');
});

test('fk_buffer grows and is reused; batch-1 classification allocates nothing after the first call', () => {
  const big = M._fk_buffer(1 << 20);
  assert.equal(M._fk_buffer(2304), big, 'a smaller request must reuse the buffer');
  assert.equal(M._fk_buffer(1 << 20), big);
  const crop = syntheticCrops().subarray(0, 2304);
  const out = M._malloc(28);
  try {
    M.HEAPU8.set(crop, M._fk_buffer(2304));
    M._fk_classify_crops(1, out);
    // After the first call, the next ones must not move the heap's top (no allocation without a free in between).
    const probe = () => { const p = M._malloc(16); M._free(p); return p; };
    const before = probe();
    for (let i = 0; i < 5; ++i) M._fk_classify_crops(1, out);
    assert.equal(probe(), before);
    assert.equal(lastError(), '');
  } finally {
    M._free(out);
  }
});

test('fk_classify_crops agrees with the native CLI (fer-train predict) to 1e-5', skipIf(noNative), () => {
  const crops = syntheticCrops();
  const n = crops.length / 2304;
  const files = [];
  for (let i = 0; i < n; ++i) {
    files.push(path.join(work, `crop${i}.bmp`));
    writeFileSync(files[i], bmp(crops.subarray(i * 2304, (i + 1) * 2304)));
  }
  const nat = JSON.parse(execFileSync(fertrain, ['predict', '--json', '--model', modelPath, ...files]));
  assert.equal(nat.length, n);
  const batch = classifyCrops(crops);
  for (let i = 0; i < n; ++i) {
    assertClose(batch[i], nat[i].probabilities, `crop ${i} (batch of ${n})`);
    assertClose(classifyCrops(crops.slice(i * 2304, (i + 1) * 2304))[0], nat[i].probabilities, `crop ${i} (alone)`);
    const sum = batch[i].reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `crop ${i}: probabilities sum to ${sum}`);
  }
});

// The first SLICE PrivateTest rows (file order) of FER-2013, from ../shared: the slice tests/test_shipped_model.cpp
// checks the shipped model's accuracy on.
const SLICE = 600;
function privateTestSlice(n) {
  const crops = new Uint8Array(n * 2304), labels = [];
  ferFaces('PrivateTest', [...Array(n).keys()]).forEach((f, i) => {
    assert.equal(f.pixels.length, 2304);
    crops.set(f.pixels, i * 2304);
    labels.push(f.label);
  });
  return { crops, labels };
}
const noShared = existsSync(sharedCsv) ? false : `${sharedCsv} is missing`;

test(`the shipped model on the first ${SLICE} PrivateTest faces: the engine's predictions are the native CLI's`,
     skipIf(noNative || noShared), () => {
  const { crops, labels } = privateTestSlice(SLICE);
  const files = [];
  for (let i = 0; i < SLICE; ++i) {
    files.push(path.join(work, `private${i}.bmp`));
    writeFileSync(files[i], bmp(crops.subarray(i * 2304, (i + 1) * 2304)));
  }
  const nat = JSON.parse(execFileSync(fertrain, ['predict', '--json', '--model', modelPath, ...files],
                                      { maxBuffer: 64 << 20 }));
  const wasm = classifyCrops(crops);
  const argmax = (p) => p.indexOf(Math.max(...p));
  let maxDiff = 0, correctWasm = 0, correctNative = 0;
  for (let i = 0; i < SLICE; ++i) {
    const n = CLASSES.map((k) => nat[i].probabilities[k]);
    n.forEach((v, c) => { maxDiff = Math.max(maxDiff, Math.abs(v - wasm[i][c])); });
    correctWasm += argmax(wasm[i]) === labels[i];
    correctNative += argmax(n) === labels[i];
  }
  console.log(`# ${SLICE} PrivateTest faces: wasm ${correctWasm} correct, native ${correctNative}; ` +
              `largest probability difference ${maxDiff.toExponential(2)}`);
  assert.ok(maxDiff <= 1e-4, `wasm and native probabilities differ by ${maxDiff}`);
  assert.equal(correctWasm, correctNative);
  assert.ok(correctWasm >= 0.6 * SLICE, `${correctWasm} of ${SLICE} correct: not the shipped model's accuracy`);
});

test('a bad model or detector is refused with a message, and the current model keeps working', () => {
  const crops = syntheticCrops();
  const reference = classifyCrops(crops);

  assert.equal(create(new Uint8Array(1000).fill(7), null), 0);
  assert.match(lastError(), /model file/);
  assert.match(lastError(), /magic/);
  assert.equal(create(model.slice(0, 5000), null), 0);
  assert.match(lastError(), /model file: .*(truncated|checksum|length|short)/i);
  const flipped = model.slice();
  flipped[flipped.length >> 1] ^= 0x40;
  assert.equal(create(flipped, null), 0);
  assert.match(lastError(), /checksum|crc/i);
  assert.equal(create(model, new Uint8Array(64).fill(1)), 0);
  assert.match(lastError(), /face detector/);
  assert.equal(create(model, model), 0);  // a model file, but a classifier
  assert.match(lastError(), /face detector: BlazeFace: expected a square RGB input/);
  assert.equal(create(new Uint8Array(0), null), 0);
  assert.notEqual(lastError(), '');

  assert.deepEqual(classifyCrops(crops), reference);
  // Replacing the model (no detector) works and clears the error.
  assert.equal(create(model, null), 1, lastError());
  assert.equal(lastError(), '');
  assert.deepEqual(classifyCrops(crops), reference);
});

test('fk_classify_rgba refuses a frame larger than the buffer; fk_buffer says when memory runs out', () => {
  assert.equal(M._fk_buffer(0x7fffffff), 0);
  assert.match(lastError(), /out of memory/);
  assert.notEqual(M._fk_buffer(16), 0);
  assert.equal(M._fk_classify_rgba(1 << 14, 1 << 14, 0), -1);
  assert.match(lastError(), /buffer/);
  assert.equal(M._fk_classify_rgba(0, 10, 0), -1);
  assert.match(lastError(), /empty/);
});

const noPhoto = decodeReason();

// Native and wasm run the same detector and classifier on the same colour pixels: their faces agree to within
// float rounding (the stated tolerances: boxes and landmarks 0.05 pixel, detector scores 1e-3, probabilities 1e-2 and
// the same label: landmarks a hair apart move the crop's pixels by a grey level here and there; measured on messi5's
// 35-pixel face, enlarged into the crop: 6e-3 pixel, 1.2e-4 and 4.8e-3).
function assertSameFaces(wasm, nat, what) {
  assert.equal(wasm.length, nat.length, `${what}: face count`);
  wasm.forEach((f, i) => {
    const d = (a, b) => Math.max(...a.map((v, k) => Math.abs(v - b[k])));
    console.log(`# ${what} face ${i}: wasm - native: box ${d(f.box, nat[i].box).toExponential(1)} px, landmarks ` +
                `${d(f.keypoints, nat[i].keypoints.flat()).toExponential(1)} px, score ${Math.abs(f.score - nat[i].score).toExponential(1)}, ` +
                `probabilities ${d(f.probs, CLASSES.map((c) => nat[i].probabilities[c])).toExponential(1)}`);
    f.box.forEach((v, k) => assert.ok(Math.abs(v - nat[i].box[k]) < 0.05, `${what} face ${i} box ${f.box} vs ${nat[i].box}`));
    assert.ok(Math.abs(f.score - nat[i].score) < 1e-3, `${what} face ${i} score ${f.score} vs ${nat[i].score}`);
    nat[i].keypoints.forEach(([x, y], k) => {
      assert.ok(Math.abs(f.keypoints[2 * k] - x) < 0.05 && Math.abs(f.keypoints[2 * k + 1] - y) < 0.05,
                `${what} face ${i} keypoint ${k}: ${f.keypoints.slice(2 * k, 2 * k + 2)} vs ${[x, y]}`);
    });
    assert.equal(CLASSES[f.label], nat[i].label, `${what} face ${i}: label`);
    CLASSES.forEach((c, j) => assert.ok(Math.abs(f.probs[j] - nat[i].probabilities[c]) <= 1e-2,
                                        `${what} face ${i} ${c}: wasm ${f.probs[j]} native ${nat[i].probabilities[c]}`));
    assert.equal(f.label, f.probs.indexOf(Math.max(...f.probs)));
  });
}

test('faces in photos agree with the native CLI (fer-train detect)', skipIf(noNative || noPhoto), () => {
  for (const file of [photo, smallFacePhoto]) {
    const frame = decode(file, false);
    const faces = classifyFrame(frame, 2);  // still: fer-train detect's search
    const nat = JSON.parse(execFileSync(fertrain, ['detect', '--json', '--model', modelPath, '--detector', detectorPath,
                                                   file]))[0];
    assert.equal(nat.width, frame.width);
    assert.equal(faces.length, 1, `${file}: one face`);
    assertSameFaces(faces, nat.faces, file);
    faces.forEach((f, i) => {
      // The crop's region: turned by the face's roll (the eye line), about as wide as two eye distances and a half.
      const [cx, cy, side, angle] = f.cropRegion;
      const [rx, ry, lx, ly] = f.keypoints.slice(0, 4);
      assert.ok(Math.abs(angle - Math.atan2(ly - ry, lx - rx)) < 0.15, `${file}: crop angle ${angle}`);
      assert.ok(side > 2 * Math.hypot(lx - rx, ly - ry) && side < 3.5 * Math.hypot(lx - rx, ly - ry), `${file}: crop side ${side}`);
      assert.ok(Math.abs(cx - (f.box[0] + f.box[2] / 2)) < f.box[2] / 4 && Math.abs(cy - (f.box[1] + f.box[3] / 2)) < f.box[3] / 4,
                `${file}: crop centre ${cx},${cy} for box ${f.box}`);
      assert.ok(M._fk_face_crop(i) !== 0, `face ${i}: no crop`);
    });
    assert.equal(M._fk_face_crop(faces.length), 0);
  }
  // A live frame (no still search) finds the astronaut's face but not Messi's small one.
  assert.equal(classifyFrame(decode(photo, false)).length, 1);
  assert.equal(classifyFrame(decode(smallFacePhoto, false)).length, 0);

  // Smoothing averages per tracked face over calls (weight 0.6 on the past), and every other smoothed call
  // classifies the mirrored face. Over repeats of the same frame: the first call adds the same view (no change),
  // the second mixes in the mirrored view p1, the third the first view again.
  const grey = decode(photo, true);
  const faces = classifyFrame(grey);
  assert.equal(faces.length, 1);
  const a = 0.6;
  const near = (x, y, what) => x.forEach((v, c) => assert.ok(Math.abs(v - y[c]) < 1e-5, `${what}: ${x} vs ${y}`));
  const s = [0, 1, 2].map(() => classifyFrame(grey, 1));
  faces.forEach((f0, i) => {
    const p0 = f0.probs;
    near(s[0][i].probs, p0, `face ${i}, first smoothed call`);
    const p1 = s[1][i].probs.map((v, c) => (v - a * p0[c]) / (1 - a));
    assert.ok(p1.every((v) => v > -1e-4), `face ${i}: the mirrored view's probabilities ${p1}`);
    assert.ok(Math.abs(p1.reduce((x, y) => x + y) - 1) < 1e-4, `face ${i}: the mirrored view sums to 1`);
    assert.ok(p1.some((v, c) => Math.abs(v - p0[c]) > 1e-4), `face ${i}: the mirrored view changes nothing`);
    near(s[2][i].probs, s[1][i].probs.map((v, c) => a * v + (1 - a) * p0[c]), `face ${i}, third call`);
    assert.equal(s[2][i].track, f0.track, 'the same face keeps its track');
  });
});

// fk_explain's map of the crop in the buffer (method 0 Grad-CAM, 1 gradient x input, 2 SmoothGrad), and the
// class it explained.
function explainCrop(crop, method, cls = -1) {
  const out = M._malloc(2304 * 4);
  try {
    const p = M._fk_buffer(2304);
    M.HEAPU8.set(crop, p);
    const explained = M._fk_explain(method, cls, out);
    assert.ok(explained >= 0, `fk_explain failed: ${lastError()}`);
    return { map: Array.from(M.HEAPF32.subarray(out >> 2, (out >> 2) + 2304)), cls: explained };
  } finally {
    M._free(out);
  }
}

// Maps are in [0, 1] with the largest 1; native (AVX) and wasm (SIMD128) sum in other orders, so a value may differ
// by rounding: these are the stated tolerances, on real faces. SmoothGrad's 16 noisy copies make it likelier that
// a ReLU or a max-pool window sits within rounding of its switch on one platform and not the other. (On made-up
// crops with flat regions max-pool windows hold exact ties, which rounding breaks either way: a pixel-gradient map
// then follows another pixel, so they are not used here.)
const MAP_TOLERANCE = { gradcam: 1e-4, 'gradient-x-input': 1e-4, smoothgrad: 3e-2 };
const MAP_FACES = 16;
test(`saliency maps: fk_explain agrees with the native CLI (fer-train explain) within ${JSON.stringify(MAP_TOLERANCE)} ` +
     `on ${MAP_FACES} PrivateTest faces`, skipIf(noNative || noShared), () => {
  const { crops } = privateTestSlice(MAP_FACES);
  const n = MAP_FACES;
  const files = [];
  for (let i = 0; i < n; ++i) {
    files.push(path.join(work, `explain${i}.bmp`));
    writeFileSync(files[i], bmp(crops.subarray(i * 2304, (i + 1) * 2304)));
  }
  const methods = ['gradcam', 'gradient-x-input', 'smoothgrad'];
  const worstOf = {};
  methods.forEach((method, m) => {
    for (const cls of [undefined, 'sad']) {
      const out = path.join(work, `maps-${method}-${cls || 'predicted'}`);
      const nat = JSON.parse(execFileSync(fertrain, ['explain', '--json', '--face-crops', '--model', modelPath,
                                                     '--method', method, ...(cls ? ['--class', cls] : []),
                                                     '--out', out, ...files], { maxBuffer: 64 << 20 }));
      assert.equal(nat.length, n);
      for (let i = 0; i < n; ++i) {
        const w = explainCrop(crops.subarray(i * 2304, (i + 1) * 2304), m, cls ? CLASSES.indexOf(cls) : -1);
        const f = nat[i].faces[0];
        assert.equal(CLASSES[w.cls], f.class, `${method} crop ${i}: the class explained`);
        assert.equal(f.map.length, 2304);
        let worst = 0;
        f.map.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - w.map[j])); });
        worstOf[method] = Math.max(worstOf[method] || 0, worst);
        assert.ok(worst <= MAP_TOLERANCE[method], `${method} face ${i} (${f.class}): wasm and native maps differ by ${worst}`);
        assert.ok(Math.max(...w.map) === 1 || w.map.every((v) => v === 0), `${method} crop ${i}: not scaled to 1`);
        assert.ok(existsSync(f.png), f.png);
      }
    }
  });
  console.log(`# largest map difference, wasm against native: ${methods.map((k) => `${k} ${worstOf[k].toExponential(2)}`).join(', ')}`);
  const bad = M._malloc(2304 * 4);
  try {
    const p = M._fk_buffer(2304);
    M.HEAPU8.set(crops.subarray(0, 2304), p);
    assert.equal(M._fk_explain(7, -1, bad), -1);
    assert.match(lastError(), /method/);
    assert.equal(M._fk_explain(0, 9, bad), -1);
    assert.match(lastError(), /class 9/);
  } finally {
    M._free(bad);
  }
});

test('ferkit-node.mjs (the API under node): loadFerkit, classify(ImageData-like), classifyCrops, loadModel', skipIf(noPhoto), async () => {
  const { loadFerkit } = await import(pathToFileURL(path.join(dist, 'ferkit-node.mjs')).href);
  const ferkit = await loadFerkit();
  assert.deepEqual(ferkit.classNames, CLASSES);
  assert.equal(ferkit.info.params, M._fk_num_params());
  const grey = decode(photo, true);
  const faces = ferkit.classify(grey);
  const expected = classifyFrame(grey);
  assert.equal(faces.length, expected.length);
  faces.forEach((f, i) => {
    assert.deepEqual([f.box.x, f.box.y, f.box.w, f.box.h], expected[i].box);
    assert.deepEqual(Object.keys(f.probabilities), CLASSES);
    assert.deepEqual(Object.values(f.probabilities), expected[i].probs);
    assert.equal(f.label, CLASSES[expected[i].label]);
    assert.deepEqual([f.cropRegion.x, f.cropRegion.y, f.cropRegion.side, f.cropRegion.angle], expected[i].cropRegion);
    assert.equal(f.score, expected[i].score);
    assert.deepEqual(Object.values(f.landmarks).flatMap((k) => [k.x, k.y]), expected[i].keypoints);
    assert.equal(f.crop.length, 2304);
    // explain(face): the Grad-CAM map of its crop, for its label unless a class is given.
    const map = ferkit.explain(f);
    assert.ok(map instanceof Float32Array && map.length === 2304);
    assert.equal(map.label, f.label);
    assert.deepEqual(Array.from(map), explainCrop(f.crop, 0).map);
    const sad = ferkit.explain(f.crop, { method: 'gradient-x-input', class: 'sad' });
    assert.equal(sad.label, 'sad');
    assert.deepEqual(Array.from(sad), explainCrop(f.crop, 1, 4).map);
  });
  assert.throws(() => ferkit.explain(new Uint8Array(10)), /2304/);
  assert.throws(() => ferkit.explain(faces[0], { method: 'lime' }), /gradcam/);
  assert.throws(() => ferkit.explain(faces[0], { class: 'bored' }), /bored/);
  const crops = syntheticCrops();
  assert.deepEqual(ferkit.classifyCrops(crops), classifyCrops(crops));
  assert.throws(() => ferkit.classifyCrops(new Uint8Array(100)), /2304/);
  assert.throws(() => ferkit.loadModel(new Uint8Array(1000).fill(7)), /magic/);
  assert.deepEqual(ferkit.classifyCrops(crops), classifyCrops(crops));  // still the same model
  ferkit.loadModel(model.buffer.slice(model.byteOffset, model.byteOffset + model.byteLength));
  assert.deepEqual(ferkit.classifyCrops(crops), classifyCrops(crops));
});

// The .ferkit file's "params" blob as a Float32Array (format: core/model_io.h; float32 files only: a float16 or
// int8 model is first widened by `fer-train export`).
function paramsOf(bytes) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = dv.getUint32(12, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + hlen)));
  assert.equal(header.blobs[0].name, 'params');
  assert.equal(header.blobs[0].dtype ?? 'f32', 'f32');
  const n = header.blobs[0].count;
  const raw = new Uint8Array(bytes.subarray(16 + hlen, 16 + hlen + 4 * n));  // a copy (aligned, own buffer)
  return { params: new Float32Array(raw.buffer), meta: header.metadata };
}

// Native and wasm fine-tuning (core/finetune.h) from the same base model, samples (in the folder loader's order:
// class folders sorted by name, then files) and settings. They differ only by float rounding (Eigen's AVX kernels
// natively, the project's SIMD128 kernels in wasm) carried through the training steps; Adam normalises each step
// to about the learning rate, so where a gradient is near zero its rounding can move a weight by a fraction of a
// step. Stated tolerance: 1e-4 (a twentieth of one step at the head's default learning rate 2e-3), while the
// weights themselves move by more than 5e-4; except that a few weights (at most 10) may be up to 1e-3 apart where
// rounding decides the sign of a near-zero gradient: with the default of 2026-11-26 21:40, one dense weight of
// 816,087 moved +1.8e-4 natively and -2.0e-4 in wasm, every other weight agreed to 4e-5. A wrong kernel or
// gradient moves many weights, not a handful. The head (what the page trains) starts from the shipped model; the
// whole network from the float32 seed: from the (then) float16-rounded default, 270 of the 1.3 M weights of the first two
// convolutions ended up to 9.9e-4 apart (5 steps at the whole network's rate 2e-4), where rounding decided the sign
// of near-zero gradients, every step, in a different direction natively and in wasm.
const seedPath = path.join(root, 'assets', 'models', 'seed', 'seed.ferkit');
for (const mode of [{ name: 'head only', settings: { epochs: 4, seed: 5 }, args: [], base: modelPath },
                    { name: 'whole network', settings: { epochs: 4, seed: 5, whole_network: true }, args: ['--whole'],
                      base: seedPath }]) {
  test(`fine-tuning (${mode.name}): fer-train finetune and the engine give the same weights to 1e-4 (all but 10, 1e-3)`, skipIf(noNative), () => {
    const dir = path.join(work, `samples-${mode.args.length}`);
    const samples = [];
    for (let c = 0; c < 7; c++) {
      execFileSync('mkdir', ['-p', path.join(dir, CLASSES[c])]);
      for (let i = 0; i < 3; i++) {
        const crop = new Uint8Array(2304);
        for (let j = 0; j < 2304; j++) crop[j] = (j * (7 * c + i + 3) + 31 * c) % 256;
        writeFileSync(path.join(dir, CLASSES[c], `s${i}.bmp`), bmp(crop));
        samples.push({ folder: CLASSES[c], file: `s${i}.bmp`, label: c, crop });
      }
    }
    samples.sort((a, b) => (a.folder < b.folder ? -1 : a.folder > b.folder ? 1 : a.file < b.file ? -1 : 1));
    const out = path.join(work, `native-${mode.args.length}.ferkit`);
    const model = new Uint8Array(readFileSync(mode.base));
    execFileSync(fertrain, ['finetune', '--model', mode.base, '--samples', dir, '--out', out, '--epochs',
                            String(mode.settings.epochs), '--seed', '5', '--threads', '1', ...mode.args], { stdio: 'pipe' });
    const crops = new Uint8Array(samples.length * 2304), labels = Uint8Array.from(samples.map((s) => s.label));
    samples.forEach((s, i) => crops.set(s.crop, i * 2304));
    const settings = new TextEncoder().encode(JSON.stringify(mode.settings) + '\0');
    const wasm = withBytes(model, (m) => withBytes(crops, (c) => withBytes(labels, (l) => withBytes(settings, (s) => {
      assert.equal(M._fk_ft_begin(m, model.length, c, l, samples.length, s), 1, lastError());
      while (M._fk_ft_run(50) === 1) { /* train */ }
      const size = M._fk_ft_finish();
      assert.ok(size > 0, lastError());
      const bytes = M.HEAPU8.slice(M._fk_ft_result(), M._fk_ft_result() + size);
      M._fk_ft_end();
      return bytes;
    }))));
    const baseF32 = path.join(work, `base-${mode.args.length}.ferkit`);  // the base's weights as float32
    execFileSync(fertrain, ['export', '--checkpoint', mode.base, '--out', baseF32], { stdio: 'pipe' });
    const a = paramsOf(readFileSync(out)), b = paramsOf(wasm), base = paramsOf(readFileSync(baseF32));
    assert.equal(a.params.length, b.params.length);
    let worst = 0, moved = 0, apart = 0;
    for (let i = 0; i < a.params.length; i++) {
      const d = Math.abs(a.params[i] - b.params[i]);
      worst = Math.max(worst, d);
      apart += d > 1e-4;
      moved = Math.max(moved, Math.abs(a.params[i] - base.params[i]));
    }
    console.log(`# ${mode.name}: max |native - wasm| = ${worst.toExponential(2)} (${apart} weights over 1e-4), ` +
                `max |tuned - base| = ${moved.toExponential(2)}`);
    assert.ok(moved > 5e-4, 'fine-tuning moved the weights');
    assert.ok(worst <= 1e-3 && apart <= 10, `native and wasm weights differ by up to ${worst}, ${apart} by over 1e-4`);
    assert.deepEqual(a.meta.finetune.config, b.meta.finetune.config);
  });
}
