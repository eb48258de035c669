// Teaching two expressions keeps a third (issue 22), in headless Chromium with three fake cameras: each clip is one
// FER-2013 PublicTest face from ../shared (made here, never committed), each a different person, all in one browser
// profile. The faces of clips A and B are taught as their FER-2013 labels, which the base model reads otherwise
// (12 samples each, default settings); afterwards A and B read as what they were taught, and C, shown to no one,
// keeps the base model's label.
//   node --test tests/web/teach_clips.test.mjs
// Needs build/wasm/dist, build/release (make_y4m) and ../shared/data/fer2013/fer2013.csv.gz.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { bmp, ferFaces, launch, dist, native, serve, sharedCsv, skipIf, workDir } from './helpers.mjs';

const names = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral'];
// PublicTest rows (0-based within PublicTest), three people whose faces the page's detector finds in these clips:
// A, an angry face the default model reads as neutral; B, a sad face it reads as angry; C, a neutral face it reads
// as neutral.
const rows = { A: 22, B: 2, C: 33 };
const work = workDir('teach-clips');

// A face as a camera would frame it: the 48x48 face at 96 px in the middle of a 144 px image (its border rows and
// columns carried out to the edges, so the detector sees a head, not a square), as a clip of a still frame.
function clipOf(face, file) {
  const S = 144, o = 24, img = new Uint8Array(S * S);
  for (let y = 0; y < S; ++y)
    for (let x = 0; x < S; ++x) {
      const fy = Math.min(47, Math.max(0, Math.floor((y - o) / 2))), fx = Math.min(47, Math.max(0, Math.floor((x - o) / 2)));
      img[y * S + x] = face.pixels[fy * 48 + fx];
    }
  writeFileSync(`${file}.bmp`, bmp(img, S));
  execFileSync(path.join(native, 'tests', 'make_y4m'), [`${file}.bmp`, `${file}.y4m`, '640', '480', '30']);
  return `${file}.y4m`;
}

const missing = [path.join(dist, 'index.html'), path.join(native, 'tests', 'make_y4m'), sharedCsv].find((f) => !existsSync(f));
let server, origin, clips, faces;
const profile = mkdtempSync(path.join(work, 'profile-'));
before(async () => {
  if (missing) return;
  const keys = Object.keys(rows);
  faces = Object.fromEntries(ferFaces('PublicTest', keys.map((k) => rows[k])).map((f, i) => [keys[i], f]));
  clips = Object.fromEntries(Object.keys(rows).map((k) => [k, clipOf(faces[k], path.join(work, k))]));
  server = await serve(dist);
  origin = server.url;
});
after(() => server && server.stop());

// Opens the page on one clip in the shared profile and runs fn(page).
async function onClip(k, fn) {
  const { ctx, page, log } = await launch(chromium, work, {
    viewport: { width: 1100, height: 900 }, profile,
    args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${clips[k]}`],
  });
  try {
    await page.goto(`${origin}/`);
    try {
      await page.waitForFunction(() => window.ferkit && window.ferkit.ready && window.ferkit.latest &&
                                       window.ferkit.latest.faces.length > 0, null, { timeout: 90000 });
    } catch (e) {
      await page.screenshot({ path: path.join(work, `no-face-${k}.png`) });
      throw new Error(`clip ${k}: no face in the page (${path.join(work, `no-face-${k}.png`)}): ${e.message}`);
    }
    const r = await fn(page);
    assert.deepEqual(log.errors, [], 'console or page errors');
    return r;
  } finally {
    await ctx.close();
  }
}

// The label the page gives the face, on an unmirrored frame (as teach.test.mjs reads it), with its probabilities.
const label = (page) => page.evaluate(async (names) => {
  for (let i = 0; i < 60; ++i) {
    const l = window.ferkit.latest;
    if (l && l.faces.length && !l.faces[0].mirrored) {
      const p = l.faces[0].probabilities;
      return { label: names.reduce((a, b) => (p[b] > p[a] ? b : a)), probs: p };
    }
    await new Promise((r) => requestAnimationFrame(r));
  }
  return null;
}, names);

const capture = async (page, cls, n) => {
  for (let i = 0; i < n; ++i) {
    assert.ok(await page.evaluate((c) => window.ferkit.capture(c), cls), 'captured');
    await page.waitForTimeout(60);
  }
};

const fmt = (r) => `${r.label} (${Object.entries(r.probs).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')})`;

test('two expressions taught from two clips: each reads as taught, a third clip keeps its label',
     { timeout: 600000, ...skipIf(missing && `${missing} is missing`) }, async () => {
  const want = { A: names[faces.A.label], B: names[faces.B.label] };
  const base = {};
  base.C = await onClip('C', label);
  base.A = await onClip('A', async (page) => {
    const r = await label(page);
    await capture(page, faces.A.label, 12);
    await page.waitForTimeout(1000);  // the page stores samples half a second after the last capture
    await page.evaluate(() => window.ferkit.saved());
    return r;
  });
  const taught = await onClip('B', async (page) => {
    base.B = await label(page);
    // Clip A's samples came back from the browser's storage.
    await page.waitForFunction((c) => window.ferkit.latest.teach.samples[c] === 12, faces.A.label, { timeout: 10000 });
    await capture(page, faces.B.label, 12);
    assert.ok(await page.evaluate(() => window.ferkit.finetune({})), 'fine-tuning started');
    await page.waitForFunction(() => window.ferkit.latest.teach.state !== 'running', null, { timeout: 300000, polling: 200 });
    const t = await page.evaluate(() => window.ferkit.latest.teach);
    assert.equal(t.state, 'done', t.message);
    await page.waitForTimeout(500);
    await page.evaluate(() => window.ferkit.saved());
    return { teach: t, B: await label(page) };
  });
  console.log(`before: A ${fmt(base.A)}; B ${fmt(base.B)}; C ${fmt(base.C)}`);
  assert.notEqual(base.A.label, want.A, 'clip A must read otherwise before teaching, or the test shows nothing');
  assert.notEqual(base.B.label, want.B, 'clip B must read otherwise before teaching');
  console.log(`fine-tuned on ${taught.teach.samples.join('/')} in ${taught.teach.seconds.toFixed(2)} s; ` +
              `reference faces kept: ${(100 * taught.teach.replay_agreement).toFixed(1)}% of ${taught.teach.replay_faces}`);
  const after = { B: taught.B, A: await onClip('A', label), C: await onClip('C', label) };
  console.log(`after: A ${fmt(after.A)}; B ${fmt(after.B)}; C ${fmt(after.C)}`);
  assert.equal(after.A.label, want.A, 'clip A reads as taught');
  assert.equal(after.B.label, want.B, 'clip B reads as taught');
  assert.equal(after.C.label, base.C.label, 'clip C, not taught, keeps its label');
});
