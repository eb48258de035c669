// ferkit-api.mjs: the JS API over a started engine, shared by the two entry points ferkit.mjs (browsers, workers,
// bundlers) and ferkit-node.mjs (node), which differ only in how they find and read the engine and the assets.
// No I/O and no platform module here. See ferkit.mjs for the API's documentation, ferkit.d.ts for its types.

const CROP_BYTES = 48 * 48;
// Per face (web/engine.cpp's fk_classify_rgba): box x, y, w, h, score, 7 probabilities, label index, the crop's
// region (centre x, y, side, angle), 6 keypoints (x, y), track, frames missed.
const RESULT_FLOATS = 31;
const KEYPOINTS = ['rightEye', 'leftEye', 'noseTip', 'mouth', 'rightEar', 'leftEar'];
const METHODS = ['gradcam', 'gradient-x-input', 'smoothgrad'];

function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError('ferkit: expected an ArrayBuffer or a typed array');
}

// The API object of ferkit.mjs's loadFerkit over the engine module M (createFerkitEngine's result), with the model
// and face detector files' bytes. Throws an Error with the engine's message if either is bad.
export function ferkitApi(M, modelBytes, detectorBytes) {
  const lastError = () => M.UTF8ToString(M._fk_last_error());
  // Copies byte arrays into wasm memory for the duration of fn(pointers...).
  function withCopies(arrays, fn) {
    const ptrs = arrays.map((a) => M._malloc(Math.max(a.length, 1)));
    try {
      arrays.forEach((a, i) => M.HEAPU8.set(a, ptrs[i]));  // (HEAPU8 read after every malloc: memory may grow)
      return fn(...ptrs);
    } finally {
      ptrs.forEach((p) => M._free(p));
    }
  }

  let info = {}, classNames = [];
  function refresh() {
    info = JSON.parse(M.UTF8ToString(M._fk_model_info()));
    classNames = Array.from({ length: 7 }, (_, i) => M.UTF8ToString(M._fk_class_name(i)));
  }
  const ok = withCopies([modelBytes, detectorBytes],
                        (m, d) => M._fk_create(m, modelBytes.length, d, detectorBytes.length));
  if (!ok) throw new Error(`ferkit: ${lastError()}`);
  refresh();

  // The engine's input buffer (grows, so read M.HEAPU8 after this call: memory may have grown).
  function buffer(bytes) {
    const ptr = M._fk_buffer(bytes);
    if (!ptr) throw new Error(`ferkit: ${lastError()}`);
    return ptr;
  }

  // One reused canvas for sources that must be drawn to be read.
  let canvas = null, ctx = null;
  function pixelsOf(source) {
    if (typeof ImageData !== 'undefined' && source instanceof ImageData) return source;
    if (source && source.data && source.width > 0 && source.height > 0 &&
        source.data.length === source.width * source.height * 4) return source;  // ImageData-like {data, width, height}
    let w, h;
    if (typeof HTMLVideoElement !== 'undefined' && source instanceof HTMLVideoElement) {
      w = source.videoWidth; h = source.videoHeight;
    } else if (typeof HTMLImageElement !== 'undefined' && source instanceof HTMLImageElement) {
      if (!source.complete) throw new Error('ferkit: the image has not finished loading');
      w = source.naturalWidth; h = source.naturalHeight;
    } else if (source && source.width !== undefined) {  // canvas, OffscreenCanvas, ImageBitmap
      w = source.width; h = source.height;
    } else {
      throw new TypeError('ferkit: classify() takes ImageData, a video, canvas, OffscreenCanvas, ImageBitmap or image');
    }
    if (!(w > 0 && h > 0)) return null;  // e.g. a video without a frame yet
    if (!canvas) {
      canvas = typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(w, h) : document.createElement('canvas');
      ctx = canvas.getContext('2d', { willReadFrequently: true });
    }
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    ctx.drawImage(source, 0, 0, w, h);
    return ctx.getImageData(0, 0, w, h);
  }

  function classify(source, { smooth = false, still = false } = {}) {
    const img = pixelsOf(source);
    if (!img) return [];
    const { width, height, data } = img;
    const ptr = buffer(width * height * 4);
    M.HEAPU8.set(data, ptr);
    const n = M._fk_classify_rgba(width, height, (smooth ? 1 : 0) | (still ? 2 : 0));
    if (n < 0) throw new Error(`ferkit: ${lastError()}`);
    const F = M.HEAPF32, r0 = M._fk_results() >> 2;
    const faces = [];
    for (let i = 0; i < n; ++i) {
      const r = r0 + i * RESULT_FLOATS;
      const probabilities = {};
      classNames.forEach((name, c) => { probabilities[name] = F[r + 5 + c]; });
      const c = M._fk_face_crop(i);
      const crop = M.HEAPU8.slice(c, c + CROP_BYTES);
      const landmarks = {};
      KEYPOINTS.forEach((name, k) => { landmarks[name] = { x: F[r + 17 + 2 * k], y: F[r + 18 + 2 * k] }; });
      faces.push({ box: { x: F[r], y: F[r + 1], w: F[r + 2], h: F[r + 3] }, score: F[r + 4], probabilities,
                   label: classNames[F[r + 12]], crop, landmarks,
                   cropRegion: { x: F[r + 13], y: F[r + 14], side: F[r + 15], angle: F[r + 16] },
                   track: F[r + 29], missed: F[r + 30] });
    }
    return faces;
  }

  let mapOut = 0;  // CROP_BYTES floats, made on the first explain()
  function explain(faceOrCrop, { method = 'gradcam', class: cls } = {}) {
    const crop = faceOrCrop && faceOrCrop.crop ? faceOrCrop.crop : faceOrCrop;
    const bytes = toBytes(crop);
    if (bytes.length !== CROP_BYTES) throw new Error('ferkit: explain() takes a face from classify() or a 48x48 crop (2304 bytes)');
    const m = METHODS.indexOf(method);
    if (m < 0) throw new Error(`ferkit: explain(): method must be one of ${METHODS.join(', ')}, not ${method}`);
    let c = -1;
    if (cls !== undefined) {
      c = typeof cls === 'number' ? cls : classNames.indexOf(cls);
      if (!(c >= 0 && c < classNames.length)) throw new Error(`ferkit: explain(): no class ${cls}`);
    }
    if (!mapOut) mapOut = M._malloc(CROP_BYTES * 4);
    const ptr = buffer(CROP_BYTES);
    M.HEAPU8.set(bytes, ptr);  // (HEAPU8 read after buffer(): memory may have grown)
    const explained = M._fk_explain(m, c, mapOut);
    if (explained < 0) throw new Error(`ferkit: ${lastError()}`);
    const map = M.HEAPF32.slice(mapOut >> 2, (mapOut >> 2) + CROP_BYTES);
    map.label = classNames[explained];
    return map;
  }

  let out = 0, outCapacity = 0;  // reused output buffer (floats)
  function classifyCrops(crops) {
    const bytes = toBytes(crops);
    if (bytes.length === 0 || bytes.length % CROP_BYTES) throw new Error('ferkit: crops must be n * 2304 bytes (48x48 grey)');
    const n = bytes.length / CROP_BYTES;
    if (outCapacity < n * 7) {
      if (out) M._free(out);
      out = M._malloc(n * 7 * 4);
      outCapacity = n * 7;
    }
    const ptr = buffer(bytes.length);
    M.HEAPU8.set(bytes, ptr);
    M._fk_classify_crops(n, out);
    if (M.HEAPU8[M._fk_last_error()] !== 0) throw new Error(`ferkit: ${lastError()}`);
    const F = M.HEAPF32, o = out >> 2;
    return Array.from({ length: n }, (_, i) => Array.from(F.subarray(o + i * 7, o + i * 7 + 7)));
  }

  function loadModel(data) {
    const bytes = toBytes(data);
    if (!withCopies([bytes], (p) => M._fk_create(p, bytes.length, 0, 0))) throw new Error(`ferkit: ${lastError()}`);
    refresh();
  }

  return {
    classify, classifyCrops, explain, loadModel,
    get info() { return info; },
    get classNames() { return classNames.slice(); },
    engine: M,
  };
}
