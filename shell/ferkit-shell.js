// The page around the WebAssembly app: start-up messages, the camera (getUserMedia), opening or dropping
// images and model files, and the page-level result object. Loaded before index.js (see shell/index.html).
//
// window.ferkit (documented in docs/web.md):
//   ready            true once the app draws
//   latest           the newest result: {frame: {width, height, source, index}, fps, timings: {grab_ms, detect_ms,
//                    detect_passes, classify_ms, draw_ms}, faces: [{box: {x, y, w, h}, score (the detector's),
//                    landmarks: [{x, y}: right eye, left eye, nose tip, mouth, right ear, left ear], roll (radians),
//                    track, missed (frames since the detector found it: a face missed once keeps its box), label,
//                    probabilities, smoothed, why: the class its overlay map explains, or null}],
//                    why: {overlay, method, explain_ms},
//                    ui: {screen: 'first-run' (no frame yet) | 'main', layout: 'wide' | 'narrow' (video above the
//                    panel), advanced_open, and on the first run start_button, open_button: {x, y, w, h} in CSS
//                    pixels of the canvas}}. Published from the first drawn frame on (frame.width 0 before a frame).
//                    The camera starts by itself only where the site already has the camera permission.
//   camera           {state: 'not started'|'starting'|'live'|'denied'|'no camera'|'lost'|'error', message,
//                    frames: how camera frames are read, 'VideoFrame' (WebCodecs) or 'canvas'}
//   crop(i)          Uint8Array(2304): the 48x48 grey crop of face i of the latest frame (mirrored for the model
//                    when the face is `mirrored`)
//   loadModel(bytes, name) -> Promise<{ok, error}>   openImage(blob) -> Promise   startCamera(index)
//   showWhy(on, method)  the saliency overlay on or off ('gradcam', 'gradient-x-input' or 'smoothgrad')
//   showLandmarks(on)    the detector's six landmarks (eyes, nose tip, mouth, ears) drawn on each face or not
//   explain(i, {method, class}) -> Float32Array(2304)  face i's saliency map over its crop (values 0..1) for a
//                    class (name or index; default its label), with .label the class explained; null: no face i
//   teach it your face (latest.teach: {samples: [per class], total, state: 'idle'|'running'|'done'|'failed'|
//   'cancelled', message, step, steps, epoch, epochs, held_before, held_after, seconds, finetuned, storage}):
//   capture(label) -> bool      the largest face of the latest frame as a sample of label (0..6), like keys 1-7
//   finetune(settings) -> bool  starts fine-tuning ({whole_network, head_layers, views, epochs, lr, anchor, batch,
//                               holdout, augment, seed}; missing fields: the panel's); watch latest.teach.state
//   cancelFinetune()   clearSamples()   resetModel()   download() (the model in use, as the Download button)
//   modelBytes() -> Uint8Array (the model in use)
//   saved() -> Promise          resolves when browser storage has every write asked for so far
// Samples and models persist in IndexedDB (database "ferkit", store "kv": keys samples, base, model).
'use strict';
(function () {
  const STATES = ['not started', 'starting', 'live', 'denied', 'no camera', 'lost', 'error'];
  const CLASSES = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];
  const WHY_METHODS = ['gradcam', 'gradient-x-input', 'smoothgrad'];
  const MAX_IMAGE_SIDE = 1280;
  const statusEl = document.getElementById('status');
  const loadingEl = document.getElementById('loading');
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  const S = { source: null, w: 0, h: 0, lastTime: -1, dirty: false, texW: 0, texH: 0, stream: null, devices: [],
              wanted: 0 };

  function say(text, isError) {
    statusEl.textContent = text || '';
    statusEl.style.display = text ? '' : 'none';
    statusEl.classList.toggle('ferkit-error', !!isError);
  }
  function loading(text, isError) {
    loadingEl.style.display = text ? '' : 'none';
    loadingEl.textContent = text || '';
    loadingEl.classList.toggle('ferkit-error', !!isError);
  }
  function running() { return typeof Module._ferkit_camera_state === 'function' && Module.calledRun; }

  const api = window.ferkit = {
    ready: false, latest: null, camera: { state: 'not started', message: '' },
    crop(i) {
      if (!running()) return null;
      const p = Module._ferkit_face_crop(i);
      return p ? HEAPU8.slice(p, p + 2304) : null;
    },
    async loadModel(bytes, name) {
      const data = new Uint8Array(bytes);
      const ptr = Module._malloc(data.length);
      try {
        HEAPU8.set(data, ptr);
        const ok = Module.ccall('ferkit_load_model', 'number', ['number', 'number', 'string'], [ptr, data.length, name || 'model file']);
        const error = ok ? '' : UTF8ToString(Module._ferkit_model_error());
        say(ok ? 'Loaded ' + (name || 'model') : error, !ok);
        return { ok: !!ok, error };
      } finally {
        Module._free(ptr);
      }
    },
    async openImage(blob) {
      let bmp;
      try {
        bmp = await createImageBitmap(blob);
        if (bmp.width > MAX_IMAGE_SIDE || bmp.height > MAX_IMAGE_SIDE) {
          const s = MAX_IMAGE_SIDE / Math.max(bmp.width, bmp.height);
          const w = Math.max(1, Math.round(bmp.width * s)), h = Math.max(1, Math.round(bmp.height * s));
          bmp.close();
          bmp = await createImageBitmap(blob, { resizeWidth: w, resizeHeight: h, resizeQuality: 'high' });
        }
      } catch (e) {
        say((blob.name || 'That file') + ' is not an image this browser can decode (' + e.message + ').', true);
        return false;
      }
      stopCamera();
      S.source = bmp; S.w = bmp.width; S.h = bmp.height; S.dirty = true;
      say('Showing ' + (blob.name || 'the image') + '. Press Start camera to go back to the camera.');
      return true;
    },
    startCamera(index) { return startCamera(index || 0); },
    // Saliency maps: the overlay on or off (method 'gradcam', 'gradient-x-input' or 'smoothgrad'), and face i's
    // map (Float32Array(2304) over its crop, values in [0, 1]) for a class (name or index; default its label).
    showWhy(on, method) {
      if (running()) Module._ferkit_show_why(on ? 1 : 0, Math.max(0, WHY_METHODS.indexOf(method || 'gradcam')));
    },
    showLandmarks(on) {
      if (running()) Module._ferkit_show_landmarks(on ? 1 : 0);
    },
    explain(i, { method = 'gradcam', class: cls } = {}) {
      if (!running()) return null;
      const m = WHY_METHODS.indexOf(method);
      const c = cls === undefined ? -1 : typeof cls === 'number' ? cls : CLASSES.indexOf(cls);
      if (m < 0 || c < -1 || c > 6) throw new Error('ferkit.explain: no method ' + method + ' or class ' + cls);
      const out = Module._malloc(2304 * 4);
      try {
        const explained = Module._ferkit_explain(i, m, c, out);
        if (explained < 0) return null;
        const map = HEAPF32.slice(out >> 2, (out >> 2) + 2304);
        map.label = CLASSES[explained];
        return map;
      } finally { Module._free(out); }
    },
    capture(label) { return running() && !!Module._ferkit_capture(label); },
    finetune(settings) {
      return running() && !!Module.ccall('ferkit_finetune', 'number', ['string'], [JSON.stringify(settings || {})]);
    },
    cancelFinetune() { if (running()) finetuneCancelled(); },
    clearSamples() { if (running()) Module._ferkit_clear_samples(); },
    resetModel() { if (running()) Module._ferkit_reset_model(); },
    download() { if (running()) Module._ferkit_download_model(); },
    modelBytes() {
      if (!running()) return null;
      const sp = Module._malloc(4);
      try {
        const p = Module._ferkit_model_bytes(sp);
        const n = HEAP32[sp >> 2];
        return HEAPU8.slice(p, p + n);
      } finally { Module._free(sp); }
    },
    saved() { return store.pending; },
  };

  // ---- browser storage (IndexedDB): samples and models survive reloads; nothing is sent anywhere ----
  const store = {
    db: null, pending: Promise.resolve(),
    open() {
      if (!this.db) {
        this.db = new Promise((resolve, reject) => {
          if (!window.indexedDB) { reject(new Error('this browser has no IndexedDB')); return; }
          const req = indexedDB.open('ferkit', 1);
          req.onupgradeneeded = () => req.result.createObjectStore('kv');
          req.onsuccess = () => resolve(req.result);
          req.onerror = () => reject(req.error || new Error('IndexedDB would not open'));
          req.onblocked = () => reject(new Error('IndexedDB is blocked by another tab'));
        });
      }
      return this.db;
    },
    async run(mode, fn) {
      const db = await this.open();
      return new Promise((resolve, reject) => {
        const tx = db.transaction('kv', mode);
        const req = fn(tx.objectStore('kv'));
        tx.oncomplete = () => resolve(req && req.result);
        tx.onerror = () => reject(tx.error || new Error('the write failed'));
        tx.onabort = () => reject(tx.error || new Error('the write was aborted'));
      });
    },
    // Writes run one after another; a failed write leaves the previous value in place (transactions are atomic).
    put(key, value) {
      const job = this.pending.then(() => this.run('readwrite', (kv) => (value === undefined ? kv.delete(key) : kv.put(value, key))));
      this.pending = job.then(() => report(true, ''), (e) => report(false, storageProblem(e))).catch(() => {});
      return this.pending;
    },
    get(key) { return this.run('readonly', (kv) => kv.get(key)); },
  };
  function storageProblem(e) {
    const name = e && e.name || '';
    if (name === 'QuotaExceededError')
      return 'Browser storage is full: the latest samples or model were not saved (what was saved before is kept). ' +
             'Free some space, or download the model to keep it.';
    return 'Browser storage is unavailable (' + (e && e.message || name || 'unknown error') + '): samples and models ' +
           'last only until this tab closes. Download the model to keep it.';
  }
  function report(ok, message) {
    if (running()) Module.ccall('ferkit_storage_result', null, ['number', 'string'], [ok ? 1 : 0, message]);
    if (!ok) say(message, true);
  }
  async function restore() {
    let base, model, samples;
    try {
      [base, model, samples] = await Promise.all([store.get('base'), store.get('model'), store.get('samples')]);
    } catch (e) {
      report(false, storageProblem(e));
      return;
    }
    const call = (fn, bytes, extra) => {
      const p = Module._malloc(Math.max(bytes.length, 1));
      try { HEAPU8.set(bytes, p); return fn(p, bytes.length, extra); } finally { Module._free(p); }
    };
    if (base instanceof Uint8Array) call(Module._ferkit_restore_model, base, 0);
    if (model instanceof Uint8Array) call(Module._ferkit_restore_model, model, 1);
    if (samples && samples.crops instanceof Uint8Array && samples.labels instanceof Uint8Array &&
        samples.crops.length === samples.labels.length * 2304) {
      const c = Module._malloc(Math.max(samples.crops.length, 1)), l = Module._malloc(Math.max(samples.labels.length, 1));
      try {
        HEAPU8.set(samples.crops, c);
        HEAPU8.set(samples.labels, l);
        Module._ferkit_restore_samples(c, l, samples.labels.length);
      } finally { Module._free(c); Module._free(l); }
    }
  }

  // ---- fine-tuning in a worker (web/finetune-worker.mjs), so the camera view keeps its frame rate ----
  let worker = null;
  function finetuneCancelled() {
    if (worker) { worker.terminate(); worker = null; }
  }
  // Started once the page runs (so its engine is compiled before the first fine-tuning), kept for the next one.
  function startWorker() {
    if (!worker) worker = new Worker(new URL('finetune-worker.mjs', document.baseURI), { type: 'module' });
  }
  // At page start: the worker compiles its engine and runs a tiny throw-away fine-tuning of the model in use, so
  // that the user's first fine-tuning finds its memory grown and its code optimised (in node: 1.5 s -> 0.5 s).
  function warmWorker() {
    startWorker();
    worker.postMessage({ type: 'warm', model: api.modelBytes() });
  }
  // The worker stays for the next fine-tuning (its memory is then already there); cancel terminates it.
  function finetuneStart(modelPtr, modelSize, cropsPtr, labelsPtr, n, settings) {
    const model = HEAPU8.slice(modelPtr, modelPtr + modelSize);
    const crops = HEAPU8.slice(cropsPtr, cropsPtr + n * 2304), labels = HEAPU8.slice(labelsPtr, labelsPtr + n);
    const failed = (message) => {
      finetuneCancelled();
      if (running()) Module.ccall('ferkit_finetune_failed', null, ['string'], [message]);
    };
    try {
      startWorker();
    } catch (e) {
      failed('fine-tuning could not start a worker: ' + e.message);
      return;
    }
    const w = worker;
    w.onmessage = (e) => {
      if (w !== worker) return;
      const m = e.data;
      if (m.type === 'progress') {
        Module.ccall('ferkit_finetune_progress', null, ['string'], [JSON.stringify(m.progress)]);
      } else if (m.type === 'done') {
        // Into the page's own buffer for incoming model files (kept between fine-tunings, so that an hour of
        // them does not fragment and grow the page's memory), not a fresh malloc each time.
        const p = Module._ferkit_model_buffer(m.model.length);
        HEAPU8.set(m.model, p);
        Module.ccall('ferkit_finetune_done', null, ['number', 'number', 'string'], [p, m.model.length, JSON.stringify(m.progress)]);
      } else if (m.type === 'error') {
        failed(m.message);
      }
    };
    w.onerror = (e) => { if (w === worker) failed('the fine-tuning worker failed: ' + (e.message || 'unknown error')); };
    w.postMessage({ type: 'start', model, crops, labels, settings: JSON.parse(settings) },
                  [model.buffer, crops.buffer, labels.buffer]);
  }

  async function importImages(label, files) {
    for (const f of files) {
      let bytes;
      try { bytes = new Uint8Array(await f.arrayBuffer()); }
      catch (e) { say(f.name + ': cannot be read (' + e.message + ')', true); continue; }
      const p = Module._malloc(Math.max(bytes.length, 1));
      try {
        HEAPU8.set(bytes, p);
        Module.ccall('ferkit_import_image', 'number', ['number', 'number', 'number', 'string'], [p, bytes.length, label, f.name]);
      } finally { Module._free(p); }
    }
  }

  function setCamera(state, message) {
    api.camera = { state: STATES[state], message: message || '' };
    if (running()) Module.ccall('ferkit_camera_state', null, ['number', 'string'], [state, message || '']);
    if (message) say(message, state >= 3);
    else if (state === 2) say('');
  }
  function stopCamera() {
    if (S.stream) S.stream.getTracks().forEach((t) => { t.onended = null; t.stop(); });
    S.stream = null;
    if (S.source === video) S.source = null;
  }
  async function listCameras() {
    try {
      const all = await navigator.mediaDevices.enumerateDevices();
      S.devices = all.filter((d) => d.kind === 'videoinput');
      const labels = S.devices.map((d, i) => d.label || 'camera ' + (i + 1));
      if (running()) Module.ccall('ferkit_set_cameras', null, ['string'], [JSON.stringify(labels)]);
    } catch (e) { /* the list is a convenience */ }
  }
  // Whether the browser says this site may already use the camera (false where it cannot tell).
  async function cameraAllowed() {
    try {
      return !!navigator.permissions && (await navigator.permissions.query({ name: 'camera' })).state === 'granted';
    } catch (e) { return false; }
  }
  async function startCamera(index) {
    S.wanted = index;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setCamera(4, 'This page cannot use a camera here (it needs https or localhost). Open or drop an image instead.');
      return;
    }
    stopCamera();
    setCamera(1, 'Starting the camera...');
    const dev = S.devices[index];
    const video_c = { width: { ideal: 640 }, height: { ideal: 480 } };
    if (dev && dev.deviceId) video_c.deviceId = { exact: dev.deviceId };
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: video_c, audio: false });
    } catch (e) {
      if (e.name === 'NotAllowedError' || e.name === 'SecurityError')
        setCamera(3, 'Camera access was denied. Allow it in the site settings and press Start camera, or open or drop an image.');
      else if (e.name === 'NotFoundError' || e.name === 'OverconstrainedError' || e.name === 'DevicesNotFoundError')
        setCamera(4, 'No camera was found. Connect one and press Start camera, or open or drop an image.');
      else if (e.name === 'NotReadableError')
        setCamera(6, 'The camera is in use by another program or could not start. Close it and press Start camera.');
      else setCamera(6, 'The camera could not start: ' + e.name + ': ' + e.message);
      return;
    }
    S.stream = stream;
    stream.getVideoTracks().forEach((t) => {
      t.onended = () => {
        if (S.stream !== stream) return;
        stopCamera();
        setCamera(5, 'The camera stopped (unplugged, or taken by another program). Press Start camera to retry, or open an image.');
      };
    });
    video.srcObject = stream;
    try { await video.play(); } catch (e) { /* autoplay of a muted stream is allowed; frames still arrive */ }
    S.source = video; S.lastTime = -1;
    setCamera(2, '');
    listCameras();
  }
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener)
    navigator.mediaDevices.addEventListener('devicechange', listCameras);

  function pick(accept, onFile, multiple) {
    const input = document.createElement('input');
    input.type = 'file';
    input.accept = accept;
    input.multiple = !!multiple;
    input.onchange = () => { if (input.files[0]) onFile(multiple ? Array.from(input.files) : input.files[0]); };
    input.click();
  }
  async function openModelFile(file) {
    try { await api.loadModel(await file.arrayBuffer(), file.name); }
    catch (e) { say(file.name + ': cannot be read (' + e.message + ')', true); }
  }
  document.addEventListener('dragover', (e) => e.preventDefault());
  document.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = e.dataTransfer && e.dataTransfer.files[0];
    if (!f) return;
    if (/\.ferkit$/i.test(f.name)) openModelFile(f); else api.openImage(f);
  });

  // A frame's RGBA pixels go into wasm memory at ptr, and the texture is uploaded from there (no synchronous
  // read-back from the GPU process, and no upload of the <video> itself, which is slow in software GL).
  // Camera frames: VideoFrame.copyTo converts to RGBA off the main thread (far cheaper on the main thread than
  // drawImage + getImageData), pipelined: each call hands over the frame copied since the last one and starts
  // copying the newest. Browsers without it (or whose copyTo cannot convert) use a
  // CPU-backed 2-D canvas (willReadFrequently).
  function drawInto(src, ptr, w, h) {
    if (!S.frameCanvas || S.frameCanvas.width !== w || S.frameCanvas.height !== h) {
      S.frameCanvas = new OffscreenCanvas(w, h);
      S.frameCtx = S.frameCanvas.getContext('2d', { alpha: false, willReadFrequently: true });
    }
    S.frameCtx.drawImage(src, 0, 0, w, h);
    HEAPU8.set(S.frameCtx.getImageData(0, 0, w, h).data, ptr);
  }
  function grabVideo(ptr, w, h) {
    const fresh = video.readyState >= 2 && video.currentTime !== S.lastTime;
    if (S.copyTo === false || typeof VideoFrame === 'undefined') {
      api.camera.frames = 'canvas';
      if (!fresh) return false;
      S.lastTime = video.currentTime;
      drawInto(video, ptr, w, h);
      return true;
    }
    api.camera.frames = 'VideoFrame';
    const ready = S.copied;
    S.copied = null;
    const handed = !!ready && ready.w === w && ready.h === h;
    if (handed) HEAPU8.set(ready.buf, ptr);
    if (fresh && !S.copying) {
      S.lastTime = video.currentTime;
      let frame = null;
      try { frame = new VideoFrame(video); } catch (e) { /* no frame to wrap yet (or the track ended) */ }
      if (frame) {
        if (!S.copyBuf || S.copyBuf.length !== w * h * 4) S.copyBuf = new Uint8Array(w * h * 4);
        const buf = S.copyBuf;
        S.copying = true;
        frame.copyTo(buf, { format: 'RGBA', colorSpace: 'srgb' })
          .then(() => { S.copied = { buf, w, h }; }, () => { S.copyTo = false; S.lastTime = -1; })  // fall back
          .finally(() => { frame.close(); S.copying = false; });
      }
    }
    return handed;
  }

  const shell = {
    frameWidth() { return S.source === video ? video.videoWidth : (S.source ? S.w : 0); },
    frameHeight() { return S.source === video ? video.videoHeight : (S.source ? S.h : 0); },
    grab(tex, ptr, w, h) {
      const src = S.source;
      if (!src) return -1;
      if (src === video) {
        if (!grabVideo(ptr, w, h)) return -1;
      } else {
        if (!S.dirty) return -1;
        S.dirty = false;
        drawInto(src, ptr, w, h);
      }
      const gl = GLctx;
      gl.bindTexture(gl.TEXTURE_2D, GL.textures[tex]);
      gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
      gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
      const pixels = HEAPU8.subarray(ptr, ptr + w * h * 4);
      if (S.texW !== w || S.texH !== h) {
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, w, h, 0, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
        S.texW = w; S.texH = h;
      } else {
        gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
      }
      gl.bindTexture(gl.TEXTURE_2D, null);
      return src === video ? 0 : 1;
    },
    publish(json) { api.latest = JSON.parse(json); },
    startCamera(index) { startCamera(index); },
    pickImage() { pick('image/*', (f) => api.openImage(f)); },
    pickModel() { pick('.ferkit', openModelFile); },
    start() {
      loading('');
      // The camera starts by itself only where this site already has its permission (a returning visitor);
      // otherwise the first-run view waits for Start camera or an image, so no prompt comes unasked.
      restore().finally(() => cameraAllowed().then((yes) => { if (yes && !S.source && !S.stream) startCamera(0); }));
      setTimeout(() => { try { warmWorker(); } catch (e) { /* reported when fine-tuning starts */ } }, 2000);
    },
    storeSamples(cropsPtr, labelsPtr, n) {
      store.put('samples', { crops: HEAPU8.slice(cropsPtr, cropsPtr + n * 2304), labels: HEAPU8.slice(labelsPtr, labelsPtr + n) });
    },
    storeModel(key, ptr, size) { store.put(key, size > 0 ? HEAPU8.slice(ptr, ptr + size) : undefined); },
    download(ptr, size, name) {
      const url = URL.createObjectURL(new Blob([HEAPU8.slice(ptr, ptr + size)], { type: 'application/octet-stream' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    },
    finetuneStart,
    finetuneCancel() { finetuneCancelled(); },
    importImages(label) { pick('image/*', (files) => importImages(label, files), true); },
    ready() { api.ready = true; },
    fail(message) { loading(message, true); },
  };

  window.Module = {
    canvas: document.getElementById('canvas'),
    ferkitShell: shell,
    print: (...a) => console.log(a.join(' ')),
    printErr: (...a) => console.warn(a.join(' ')),
    setStatus: (text) => { if (text) loading(text.replace(/\(\d+\/\d+\)/, (m) => m)); },
    onAbort: (what) => loading('ferkit could not start: WebAssembly failed to load (' + what + '). Reload the page.', true),
  };
  if (typeof WebAssembly !== 'object') loading('This browser cannot run WebAssembly, which ferkit needs.', true);
  else if (!document.createElement('canvas').getContext('webgl2'))
    loading('This browser has no WebGL 2, which ferkit needs to draw. Try a current Chrome, Firefox or Safari.', true);
  Module.canvas.addEventListener('webglcontextlost', (e) => { e.preventDefault(); loading('The graphics context was lost: reload the page.', true); });
})();
