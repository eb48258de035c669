// The page around the WebAssembly app: start-up messages, the camera (getUserMedia), opening or dropping
// images and model files, and the page-level result object. Loaded before index.js (see shell/index.html).
//
// window.ferkit (documented in README.md):
//   ready            true once the app draws
//   latest           the newest result: {frame: {width, height, source}, fps, timings: {grab_ms, detect_ms,
//                    classify_ms, draw_ms}, faces: [{box: {x, y, w, h}, track, label, probabilities, smoothed}]}
//   camera           {state: 'not started'|'starting'|'live'|'denied'|'no camera'|'lost'|'error', message}
//   crop(i)          Uint8Array(2304): the 48x48 grey crop the model saw for face i of the latest frame
//   loadModel(bytes, name) -> Promise<{ok, error}>   openImage(blob) -> Promise   startCamera(index)
'use strict';
(function () {
  const STATES = ['not started', 'starting', 'live', 'denied', 'no camera', 'lost', 'error'];
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
  };

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

  function pick(accept, onFile) {
    const input = document.createElement('input');
    input.type = 'file';
    input.accept = accept;
    input.onchange = () => { if (input.files[0]) onFile(input.files[0]); };
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

  const shell = {
    frameWidth() { return S.source === video ? video.videoWidth : (S.source ? S.w : 0); },
    frameHeight() { return S.source === video ? video.videoHeight : (S.source ? S.h : 0); },
    grab(tex, fbo, ptr, w, h) {
      const src = S.source;
      if (!src) return -1;
      if (src === video) {
        if (video.readyState < 2 || video.currentTime === S.lastTime) return -1;
        S.lastTime = video.currentTime;
      } else if (!S.dirty) {
        return -1;
      }
      S.dirty = false;
      // Video frames go through a 2-D canvas first: uploading a <video> straight into a texture measured 30 ms per
      // 640x480 frame in headless Chromium (SwiftShader), drawing it into a canvas and uploading that 12 ms.
      let pixels = src;
      if (src === video) {
        if (!S.frameCanvas || S.frameCanvas.width !== w || S.frameCanvas.height !== h) {
          S.frameCanvas = new OffscreenCanvas(w, h);
          S.frameCtx = S.frameCanvas.getContext('2d', { alpha: false });
        }
        S.frameCtx.drawImage(video, 0, 0, w, h);
        pixels = S.frameCanvas;
      }
      const gl = GLctx;
      gl.bindTexture(gl.TEXTURE_2D, GL.textures[tex]);
      gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, false);
      gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
      if (S.texW !== w || S.texH !== h) {
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
        S.texW = w; S.texH = h;
      } else {
        gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
      }
      gl.bindFramebuffer(gl.FRAMEBUFFER, GL.framebuffers[fbo]);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, GL.textures[tex], 0);
      gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, HEAPU8, ptr);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      gl.bindTexture(gl.TEXTURE_2D, null);
      return src === video ? 0 : 1;
    },
    publish(json) { api.latest = JSON.parse(json); },
    startCamera(index) { startCamera(index); },
    pickImage() { pick('image/*', (f) => api.openImage(f)); },
    pickModel() { pick('.ferkit', openModelFile); },
    start() { loading(''); startCamera(0); },
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
