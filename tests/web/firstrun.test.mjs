// The page's first run in headless Chromium, as a new visitor sees it (no camera permission yet): the first-run view
// with its two buttons and no camera prompt until Start camera is pressed; the buttons work when clicked where the
// page says they are; after the start the panel's "Advanced" section is collapsed; in a phone-sized window the
// video sits above the full-width panel. Screenshots at 1280x720 and 390x844, before and after the start, go to
// FERKIT_SCREENSHOTS (build/web-test/ by default): first-run-1280x720.png, camera-1280x720.png, image-1280x720.png,
// first-run-390x844.png, camera-390x844.png.
//   node --test tests/web/firstrun.test.mjs
// Needs build/wasm/dist, build/release (make_y4m) and Debian python3-skimage's astronaut.png (the fake camera's clip).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { launch, shots, photo, workDir, cameraSetup } from './helpers.mjs';

const work = workDir('firstrun');
let server, origin, clip;
before(async () => {
  ({ server, origin, clip } = await cameraSetup(work));
});
after(() => server && server.stop());

const fakeCamera = () => ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
                          `--use-file-for-fake-video-capture=${clip}`];

// A first visit (no camera permission) at the given size, on the first-run view.
// Resolves to { ctx, page, log, ui, chooser: a promise of the first file chooser the page opens }.
async function firstVisit(width, height) {
  const { ctx, page, log } = await launch(chromium, work, { viewport: { width, height }, args: fakeCamera(), firstVisit: true });
  // Listening from the start: Playwright intercepts file choosers only while someone listens.
  const chooser = new Promise((resolve) => page.once('filechooser', resolve));
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.ferkit && window.ferkit.ready && window.ferkit.latest &&
                                   window.ferkit.latest.ui && window.ferkit.latest.ui.start_button, null, { timeout: 90000 });
  // A few frames later (the buttons' places settle once the view has its size), the page still waits.
  await page.waitForTimeout(1500);
  const r = await page.evaluate(() => ({ latest: window.ferkit.latest, camera: window.ferkit.camera }));
  assert.equal(r.latest.ui.screen, 'first-run');
  assert.equal(r.camera.state, 'not started', 'the camera started (or prompted) before anyone asked');
  assert.equal(r.latest.frame.width, 0);
  return { ctx, page, log, ui: r.latest.ui, chooser };
}

// The button's rectangle is inside the window and big enough to hit on a phone.
function checkButton(b, width, height, what) {
  assert.ok(b && b.w >= 120 && b.h >= 30, `${what}: ${JSON.stringify(b)}`);
  assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.w <= width && b.y + b.h <= height, `${what} outside the window: ${JSON.stringify(b)}`);
}
const centre = (b) => [b.x + b.w / 2, b.y + b.h / 2];

function offOrigin(log) {
  return log.requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith('blob:'));
}

// After the start: the main view with a face found, "Advanced" collapsed.
async function mainView(page) {
  await page.waitForFunction(() => window.ferkit.camera.state === 'live' && window.ferkit.latest.ui.screen === 'main' &&
                                   window.ferkit.latest.faces.length > 0, null, { timeout: 60000 });
  await page.waitForTimeout(1500);
  const ui = await page.evaluate(() => window.ferkit.latest.ui);
  assert.equal(ui.advanced_open, false, 'the Advanced section starts open');
  return ui;
}

for (const [width, height, layout] of [[1280, 720, 'wide'], [390, 844, 'narrow']]) {
  test(`first run at ${width}x${height}: Start camera, then the ${layout} layout`, async () => {
    const { ctx, page, log, ui } = await firstVisit(width, height);
    try {
      assert.equal(ui.layout, layout);
      checkButton(ui.start_button, width, height, 'Start camera');
      checkButton(ui.open_button, width, height, 'Open an image');
      assert.ok(ui.open_button.y >= ui.start_button.y + ui.start_button.h, 'Open an image is not below Start camera');
      await page.screenshot({ path: path.join(shots, `first-run-${width}x${height}.png`) });

      await page.mouse.click(...centre(ui.start_button));
      const main = await mainView(page);
      assert.equal(main.layout, layout);
      const v = main.video, p = main.panel;
      if (layout === 'narrow') {
        assert.ok(p.y >= v.y + v.h - 1, `the panel ${JSON.stringify(p)} is not below the video ${JSON.stringify(v)}`);
        assert.equal(p.w, width, 'the panel is not full width');
        assert.ok(v.w >= width - 20, `the video ${JSON.stringify(v)} does not fill the width`);
      } else {
        assert.ok(p.x >= v.x + v.w - 1, `the panel ${JSON.stringify(p)} is not right of the video ${JSON.stringify(v)}`);
        assert.equal(p.h, height);
      }
      await page.screenshot({ path: path.join(shots, `camera-${width}x${height}.png`) });
      assert.deepEqual(offOrigin(log), [], 'requests outside the origin');
      assert.deepEqual(log.errors, [], 'console errors');
    } finally {
      await ctx.close();
    }
  });
}

test('first run: "Open an image..." opens the file chooser and the photo is classified', async () => {
  const { ctx, page, log, ui, chooser } = await firstVisit(1280, 720);
  try {
    await page.mouse.click(...centre(ui.open_button));
    await (await chooser).setFiles(photo);
    await page.waitForFunction(() => window.ferkit.latest.ui.screen === 'main' &&
                                     window.ferkit.latest.frame.source === 'image' && window.ferkit.latest.faces.length > 0,
                               null, { timeout: 30000 });
    assert.equal(await page.evaluate(() => window.ferkit.camera.state), 'not started', 'an image started the camera');
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(shots, 'image-1280x720.png') });
    assert.deepEqual(offOrigin(log), [], 'requests outside the origin');
    assert.deepEqual(log.errors, [], 'console errors');
  } finally {
    await ctx.close();
  }
});
