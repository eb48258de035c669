// Browser smoke test of the WebAssembly app: loads it in Debian's Chromium (headless, WebGL 2 on SwiftShader)
// through playwright-core, waits until the app has drawn its first frame (Module.ferkitReady, set by
// web/main.cpp), checks the core's report (Module.ferkitInfo), saves a screenshot, and fails if the page logged
// an error, threw, or a request failed.
//
//   node tests/web/smoke.mjs --screenshot out.png                   serves build/wasm/dist itself
//   node tests/web/smoke.mjs --dist DIR --screenshot out.png         serves DIR (python3 -m http.server)
//   node tests/web/smoke.mjs --url http://127.0.0.1:8000/ --screenshot out.png
//   (--chromium PATH, default /usr/bin/chromium; --timeout SECONDS, default 90)
//
// Needs: scripts/setup.sh --web (chromium, python3, npm install of playwright-core). Never downloads a browser.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function parseArgs(argv) {
  const opts = { dist: path.join(root, 'build', 'wasm', 'dist'), url: null, screenshot: null,
                 chromium: '/usr/bin/chromium', timeout: 90 };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--dist') opts.dist = path.resolve(next());
    else if (a === '--url') opts.url = next();
    else if (a === '--screenshot') opts.screenshot = path.resolve(next());
    else if (a === '--chromium') opts.chromium = next();
    else if (a === '--timeout') opts.timeout = Number(next());
    else if (!a.startsWith('--') && !opts.screenshot) opts.screenshot = path.resolve(a);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!opts.screenshot) throw new Error('usage: smoke.mjs [--url URL | --dist DIR] --screenshot PATH.png');
  return opts;
}

// Serves dir on 127.0.0.1 at a free port; resolves to { url, stop }.
function serve(dir) {
  if (!existsSync(path.join(dir, 'index.html'))) {
    throw new Error(`${dir}/index.html not found: build the app first (cmake --build --preset wasm)`);
  }
  return new Promise((resolve, reject) => {
    const server = spawn('python3', ['-u', '-m', 'http.server', '--bind', '127.0.0.1', '--directory', dir, '0'],
                         { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => { server.kill(); reject(new Error(`http.server did not start: ${out}`)); }, 15000);
    const onData = (chunk) => {
      out += chunk;
      const m = out.match(/port (\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ url: `http://127.0.0.1:${m[1]}/`, stop: () => server.kill() });
      }
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', () => {});  // request log
    server.on('error', (e) => { clearTimeout(timer); reject(e); });
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`http.server exited (${code}): ${out}`)); });
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const server = opts.url ? null : await serve(opts.dist);
  const url = opts.url ?? server.url;
  const profile = mkdtempSync(path.join(tmpdir(), 'ferkit-chromium-'));
  const errors = [];
  let browser;
  try {
    // A fresh profile each run (playwright passes it as --user-data-dir).
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: opts.chromium,
      headless: true,
      viewport: { width: 1024, height: 640 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--enable-unsafe-swiftshader', '--disable-quic',
             '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = browser.pages()[0] ?? await browser.newPage();
    page.on('console', (msg) => {
      const line = `[console.${msg.type()}] ${msg.text()}`;
      console.log(line);
      if (msg.type() === 'error') errors.push(line);
    });
    page.on('pageerror', (err) => { console.log(`[pageerror] ${err.message}`); errors.push(`pageerror: ${err.message}`); });
    page.on('requestfailed', (req) => errors.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
    page.on('response', (res) => { if (res.status() >= 400) errors.push(`HTTP ${res.status()}: ${res.url()}`); });

    const t0 = Date.now();
    await page.goto(url, { waitUntil: 'load', timeout: opts.timeout * 1000 });
    await page.waitForFunction(() => window.Module && window.Module.ferkitReady === true,
                               null, { timeout: opts.timeout * 1000, polling: 100 });
    const loadMs = Date.now() - t0;
    const info = await page.evaluate(() => window.Module.ferkitInfo);
    const webgl2 = await page.evaluate(() => !!document.createElement('canvas').getContext('webgl2'));
    const loadingVisible = await page.evaluate(() => {
      const el = document.getElementById('loading');
      return !!el && getComputedStyle(el).display !== 'none';
    });
    // A few more frames so the screenshot shows a settled ImGui window.
    await page.waitForTimeout(1000);
    mkdirSync(path.dirname(opts.screenshot), { recursive: true });
    await page.screenshot({ path: opts.screenshot });
    console.log(`smoke: ${url} ready in ${loadMs} ms; ferkitInfo=${JSON.stringify(info)}; webgl2=${webgl2}`);
    console.log(`smoke: screenshot ${opts.screenshot}`);

    if (!info || !info.ok) errors.push(`core check failed in the page: ${JSON.stringify(info)}`);
    else if (!(info.params > 0)) errors.push(`tiny model reports ${info.params} parameters`);
    if (loadingVisible) errors.push('the loading message is still shown');
  } catch (e) {
    errors.push(`${e.message}`);
  } finally {
    if (browser) await browser.close();
    if (server) server.stop();
    rmSync(profile, { recursive: true, force: true });
  }
  if (errors.length) {
    console.error(`smoke: FAILED\n  ${errors.join('\n  ')}`);
    process.exit(1);
  }
  console.log('smoke: OK');
}

main().catch((e) => { console.error(`smoke: ${e.stack || e}`); process.exit(1); });
