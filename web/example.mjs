// The example page's script (dist/example.mjs): open a photo or start the camera, classify, draw.
import { loadFerkit } from './ferkit.mjs';

const $ = (id) => document.getElementById(id);
const view = $('view'), ctx = view.getContext('2d');
let camera = null;  // {stream, video} while the camera runs

function status(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

// Draws the frame, a box and label per face, and lists the results.
function show(source, width, height, faces) {
  if (view.width !== width || view.height !== height) {
    view.width = width;
    view.height = height;
  }
  ctx.drawImage(source, 0, 0, width, height);
  const px = Math.max(2, Math.round(width / 300));
  ctx.lineWidth = px;
  ctx.font = `bold ${8 * px}px system-ui, sans-serif`;
  ctx.textBaseline = 'bottom';
  const items = faces.map((face, i) => {
    const { x, y, w, h } = face.box;
    const text = `${face.label} ${Math.round(100 * face.probabilities[face.label])}%`;
    ctx.strokeStyle = ctx.fillStyle = '#ffd400';
    ctx.strokeRect(x, y, w, h);
    ctx.fillText(text, x, y - px);
    const li = document.createElement('li');
    li.textContent = `face ${i + 1} at (${Math.round(x)}, ${Math.round(y)}), ${Math.round(w)}x${Math.round(h)}: ${text} — ` +
      Object.entries(face.probabilities).map(([k, p]) => `${k} ${p.toFixed(2)}`).join(', ');
    return li;
  });
  $('results').replaceChildren(...items);
  if (!faces.length) $('results').replaceChildren(Object.assign(document.createElement('li'), { textContent: 'no face found' }));
}

function stopCamera() {
  if (!camera) return;
  camera.stream.getTracks().forEach((t) => t.stop());
  camera = null;
  $('camera').textContent = 'Use camera';
}

async function startCamera(ferkit) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  const video = Object.assign(document.createElement('video'), { srcObject: stream, muted: true, playsInline: true });
  await video.play();
  camera = { stream, video };
  $('camera').textContent = 'Stop camera';
  status('Camera running.');
  const frame = () => {
    if (!camera || camera.video !== video) return;
    // smooth: average each face's probabilities over frames (steadier labels on video).
    show(video, video.videoWidth, video.videoHeight, ferkit.classify(video, { smooth: true }));
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

try {
  const ferkit = await loadFerkit();
  status(`Model "${ferkit.info.name}" ready: choose a photo or start the camera.`);
  $('file').disabled = $('camera').disabled = false;

  $('file').addEventListener('change', async () => {
    const file = $('file').files[0];
    if (!file) return;
    stopCamera();
    try {
      const image = await createImageBitmap(file);
      const faces = ferkit.classify(image);
      show(image, image.width, image.height, faces);
      status(`${file.name}: ${faces.length} face(s).`);
    } catch (e) {
      status(`${file.name}: ${e.message}`, true);
    }
  });

  $('camera').addEventListener('click', async () => {
    if (camera) return stopCamera();
    try {
      await startCamera(ferkit);
    } catch (e) {
      status(`Camera: ${e.message}`, true);
    }
  });
} catch (e) {
  status(`ferkit could not start: ${e.message}`, true);
}
