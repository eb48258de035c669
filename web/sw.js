// The page's service worker (docs/offline.md): keeps every file the page needs in the Cache Storage, so the page
// starts, classifies and fine-tunes offline. cmake/precache.cmake writes dist/sw.js from web/sw.js at build time,
// with the list of files (each with its SHA-256) and a build id made from those hashes: any changed file changes
// sw.js, and the browser installs the new worker when it next checks (at a visit).
//   install:  downloads every file of the list and checks each against its SHA-256 (a half-finished deploy fails
//             the install, and the old build keeps working), puts them in a cache of this build's own
//             ("ferkit:<scope>:<build>"), then takes over at once (skipWaiting)
//   activate: deletes the caches of the other builds of this scope, and controls the open pages (clients.claim);
//             a page that was running the old build says "reload" (shell/ferkit-offline.js)
//   fetch:    the listed files (and the scope's own address, as index.html) come from this build's cache; any
//             other request goes to the network untouched
//   message:  {type: 'build'} on a MessageChannel -> {build, files}
'use strict';
const BUILD = '@FERKIT_BUILD@';
const FILES = @FERKIT_FILES@;  // [[path relative to this script, SHA-256 hex], ...]

const SCOPE = self.registration.scope;
const PREFIX = 'ferkit:' + SCOPE + ':';
const CACHE = PREFIX + BUILD;
const URLS = new Set(FILES.map(([file]) => new URL(file, self.location).href));
const INDEX = new URL('index.html', self.location).href;

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

// Tells the pages of this scope (controlled or not) why the install failed: shell/ferkit-offline.js shows it.
async function tell(message) {
  for (const c of await self.clients.matchAll({ includeUncontrolled: true, type: 'window' }))
    if (c.url.startsWith(SCOPE)) c.postMessage({ type: 'ferkit-offline-failed', build: BUILD, message });
}

async function precache() {
  const responses = await Promise.all(FILES.map(async ([file, sha256]) => {
    const url = new URL(file, self.location).href;
    // Revalidated against the HTTP cache first; if that gives other bytes (a server whose Last-Modified cannot
    // tell two writes in the same second apart), downloaded again in full.
    let res, body, got;
    for (const cache of ['no-cache', 'reload']) {
      try {
        res = await fetch(url, { cache, credentials: 'same-origin' });
      } catch (e) {
        throw new Error(`${file}: could not be downloaded (${e.message})`);
      }
      if (!res.ok) throw new Error(`${file}: the server answered ${res.status} ${res.statusText}`);
      body = await res.arrayBuffer();
      got = hex(await crypto.subtle.digest('SHA-256', body));
      if (got === sha256) break;
    }
    if (got !== sha256)
      throw new Error(`${file}: its SHA-256 is ${got}, this build (${BUILD}) lists ${sha256}: the site is part old, ` +
                      'part new (a deploy in progress?); the next visit tries again');
    // A fresh response from the checked bytes (also drops a redirect, which a navigation may not be answered with).
    return [url, new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers })];
  }));
  const cache = await caches.open(CACHE);
  await Promise.all(responses.map(([url, res]) => cache.put(url, res)));
}

self.addEventListener('install', (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting(), async (e) => {
    await caches.delete(CACHE);
    await tell(e.message);
    throw e;
  }));
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys())
      if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  let key = url.origin + url.pathname;
  if (req.mode === 'navigate') {
    if (key === SCOPE) key = INDEX;  // the site's own address is its index.html; a query string is ignored
  } else if (url.search) {
    return;
  }
  if (!URLS.has(key)) return;
  event.respondWith(caches.open(CACHE).then((cache) => cache.match(key)).then((hit) => hit || fetch(req)));
});

self.addEventListener('message', (event) => {
  if (event.data && event.data.type === 'build' && event.ports[0])
    event.ports[0].postMessage({ build: BUILD, files: FILES.length });
});
