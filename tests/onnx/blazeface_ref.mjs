// The reference for the BlazeFace tests (tests/test_onnx.cpp): MediaPipe's short-range face detection, written from
// its graph's options apart from core/blazeface.cpp, over ONNX Runtime's outputs of the same ONNX graph:
//   node tests/onnx/blazeface_ref.mjs MODEL.onnx INPUT.rgb SIDE OUT.json
// INPUT.rgb: SIDE x SIDE x 3 bytes. OUT.json: {"detections": [{score, box: [xmin, ymin, w, h], keypoints: [x0, y0,
// ...]}], "raw": [every output value]}, positions in input pixels.
// MediaPipe (mediapipe/modules/face_detection/face_detection_short_range.pbtxt): SsdAnchorsCalculator with
// fixed_anchor_size and anchor_offset 0.5 (one anchor position per cell, each level's anchors per cell together),
// TensorsToDetectionsCalculator (sigmoid scores clipped at 100, min_score_thresh 0.5, x/y/w/h scale = the input
// side, keypoints after the box), NonMaxSuppressionCalculator (WEIGHTED, IoU, min_suppression_threshold 0.3).
import { readFileSync, writeFileSync } from 'node:fs';
import * as ort from 'onnxruntime-web';

const [modelPath, inputPath, sideArg, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: node blazeface_ref.mjs MODEL.onnx INPUT.rgb SIDE OUT.json');
  process.exit(2);
}
const side = Number(sideArg);
ort.env.wasm.numThreads = 1;
const session = await ort.InferenceSession.create(readFileSync(modelPath));
const rgb = readFileSync(inputPath);
const x = new Float32Array(side * side * 3);
for (let i = 0; i < x.length; ++i) x[i] = rgb[i] / 127.5 - 1;  // the model's [-1, 1]
const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, [1, side, side, 3]) });
// Outputs: score maps (one value an anchor), then box maps (16 an anchor), each level 1 x anchors x k.
const outs = session.outputNames.map((n) => result[n]);
const scoreMaps = outs.filter((t) => t.dims[2] === 1);
const boxMaps = outs.filter((t) => t.dims[2] === 16);
// Anchors: BlazeFace's 2 a cell on the finer grid and 6 on the coarser one; a level's grid follows from its count.
const anchors = [];
for (const [level, perCell] of [[0, 2], [1, 6]]) {
  const cells = Math.round(Math.sqrt(scoreMaps[level].dims[1] / perCell));
  for (let y = 0; y < cells; ++y)
    for (let xx = 0; xx < cells; ++xx)
      for (let a = 0; a < perCell; ++a) anchors.push([(xx + 0.5) / cells, (y + 0.5) / cells]);
}
const scores = Float32Array.from(scoreMaps.flatMap((t) => Array.from(t.data)));
const boxes = Float32Array.from(boxMaps.flatMap((t) => Array.from(t.data)));
if (scores.length !== anchors.length || boxes.length !== 16 * anchors.length) throw new Error('unexpected outputs');
const dets = [];
for (let i = 0; i < anchors.length; ++i) {
  const s = 1 / (1 + Math.exp(-Math.min(100, Math.max(-100, scores[i]))));
  if (s < 0.5) continue;
  const r = boxes.subarray(16 * i, 16 * i + 16);
  const [ax, ay] = anchors[i];
  const cx = r[0] / side + ax, cy = r[1] / side + ay, w = r[2] / side, h = r[3] / side;
  if (!(w > 0 && h > 0)) continue;  // no box at all (core/blazeface.cpp drops these too)
  const kp = [];
  for (let k = 0; k < 6; ++k) kp.push(r[4 + 2 * k] / side + ax, r[5 + 2 * k] / side + ay);
  dets.push({ score: s, box: [cx - w / 2, cy - h / 2, w, h], kp });
}
dets.sort((a, b) => b.score - a.score);
const iou = (a, b) => {
  const x0 = Math.max(a[0], b[0]), y0 = Math.max(a[1], b[1]);
  const x1 = Math.min(a[0] + a[2], b[0] + b[2]), y1 = Math.min(a[1] + a[3], b[1] + b[3]);
  if (x1 <= x0 || y1 <= y0) return 0;
  const inter = (x1 - x0) * (y1 - y0);
  return inter / (a[2] * a[3] + b[2] * b[3] - inter);
};
let remaining = dets;
const faces = [];
while (remaining.length) {
  const best = remaining[0];
  const merged = remaining.filter((d) => iou(d.box, best.box) > 0.3);
  const rest = remaining.filter((d) => !(iou(d.box, best.box) > 0.3));
  let total = 0;
  const acc = new Array(4 + 12).fill(0);
  for (const d of merged) {
    total += d.score;
    const corners = [d.box[0], d.box[1], d.box[0] + d.box[2], d.box[1] + d.box[3]];
    corners.forEach((v, j) => { acc[j] += d.score * v; });
    d.kp.forEach((v, j) => { acc[4 + j] += d.score * v; });
  }
  const m = acc.map((v) => v / total);
  faces.push({ score: best.score, box: [m[0], m[1], m[2] - m[0], m[3] - m[1]].map((v) => v * side),
               keypoints: m.slice(4).map((v) => v * side) });
  if (rest.length === remaining.length) break;
  remaining = rest;
}
writeFileSync(outPath, JSON.stringify({ detections: faces, raw: Array.from(scores).concat(Array.from(boxes)) }));
console.log(`${faces.length} faces`);
