// ferkit.mjs: facial-expression recognition for web pages, on the user's device (no server, no request
// outside the page's origin). The ES module around the WebAssembly engine (ferkit-engine.mjs + .wasm), for
// browsers, workers and bundlers; ferkit-node.mjs is the same API for node (the npm package's "node" export).
//
//   import { loadFerkit } from './ferkit.mjs';
//   const ferkit = await loadFerkit();            // fetches the engine, assets/default.ferkit, assets/blazeface.ferkit
//   const faces = ferkit.classify(videoOrImage);  // ImageData, <video>, <canvas>, OffscreenCanvas, ImageBitmap, <img>
//   // -> [{ box: {x, y, w, h}, score, probabilities: {angry, disgust, fear, happy, sad, surprise, neutral},
//   //       label: 'happy', landmarks: {rightEye, leftEye, noseTip, mouth, rightEar, leftEar: {x, y}},
//   //       crop: Uint8Array(2304), cropRegion: {x, y, side, angle}, track, missed }]
//   const map = ferkit.explain(faces[0]);         // Float32Array(48 * 48): what the label rests on
//
// loadFerkit({ baseUrl, modelUrl, detectorUrl }): baseUrl is where ferkit-engine.wasm and assets/ live (default:
// this module's folder, so the folder works from any path; a bundler that follows new URL('...', import.meta.url),
// such as Vite, copies them into its output); modelUrl / detectorUrl (relative to the page; in a worker, to the
// worker's script) replace the default model and face detector. ferkit-engine.mjs is imported statically
// from beside this module (bundlers include it), and nothing here imports a node module, so a browser bundle
// carries none.
// The returned object:
//   classify(source, { smooth = false, still = false })  faces in the frame, largest first, boxes and landmarks in
//       the source's pixels; track numbers a face by its overlap with the last call's. With smooth, successive calls
//       are frames of one video: probabilities are averaged per tracked face, every other call classifies the
//       mirrored faces, so the average covers both views (flip averaging at one view's cost; a face seen for the
//       first time gets both views at once), boxes are steadied, a face the detector misses is looked for again
//       where it was, and one missed for a call keeps its box (missed: 1). With still (a
//       photo), the whole image is searched in tiles for small faces as well (slower; no tracking).
//       Each face has its 48x48 grey crop (what the model saw: turned so the eyes are level, framed as FER-2013's
//       faces) and cropRegion, the square of the source it was resampled from (centre x, y, side, and the angle
//       in radians it is turned by: where to draw a saliency map over the source).
//   classifyCrops(Uint8Array)  n 48x48 grey crops (n * 2304 bytes, row-major) -> n arrays of 7 probabilities
//   explain(faceOrCrop, { method = 'gradcam', class })  a saliency map of a face from classify() or a 48x48 crop
//       (Uint8Array(2304)): a Float32Array of 48 * 48 values in [0, 1], row-major over the crop, 1 where the
//       class's score depends most on the pixels. method: 'gradcam' (Grad-CAM on the last convolution block,
//       coarse, about one network run), 'gradient-x-input' or 'smoothgrad' (pixel gradients; smoothgrad averages
//       16 noisy copies); class: a class name or index, default the predicted one. The map's `label` property
//       names the class explained
//   loadModel(bytes)           replaces the model (ArrayBuffer or typed array of a .ferkit file); throws an Error
//                              saying what is wrong with a bad file and keeps the current model
//   info                       {name, params, macs, classes, accuracy?} of the current model
//   classNames                 ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']
//   engine                     the raw Emscripten module (fk_* functions, see web/engine.cpp)

import createFerkitEngine from './ferkit-engine.mjs';
import { ferkitApi } from './ferkit-api.mjs';

const href = (u) => String(u && typeof u === 'object' && 'href' in u ? u.href : u);  // a URL, {href} or a string

async function fetchBytes(url) {
  const res = await fetch(url, { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`ferkit: could not load ${url.href} (HTTP ${res.status})`);
  return new Uint8Array(await res.arrayBuffer());
}

export async function loadFerkit({ baseUrl, modelUrl, detectorUrl } = {}) {
  const pageUrl = globalThis.document ? document.baseURI : globalThis.location ? location.href : import.meta.url;
  // The files' default places are written out as new URL('./file', import.meta.url), the pattern bundlers
  // recognise, and made only when needed (import.meta.url is empty in a non-module bundle given a baseUrl).
  let base = null;
  if (baseUrl !== undefined) {
    base = new URL(href(baseUrl), pageUrl);
    if (!base.pathname.endsWith('/')) base = new URL(base.pathname + '/' + base.search, base);
  }
  const wasm = base ? new URL('ferkit-engine.wasm', base) : new URL('./ferkit-engine.wasm', import.meta.url);
  const model = modelUrl ? new URL(href(modelUrl), pageUrl)
    : base ? new URL('assets/default.ferkit', base) : new URL('./assets/default.ferkit', import.meta.url);
  const detector = detectorUrl ? new URL(href(detectorUrl), pageUrl)
    : base ? new URL('assets/blazeface.ferkit', base) : new URL('./assets/blazeface.ferkit', import.meta.url);

  const [M, modelBytes, detectorBytes] = await Promise.all([
    createFerkitEngine({ locateFile: () => wasm.href }), fetchBytes(model), fetchBytes(detector)]);
  return ferkitApi(M, modelBytes, detectorBytes);
}
