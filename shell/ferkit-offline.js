// Offline and installable (docs/offline.md): registers the service worker sw.js (generated at build time by
// cmake/precache.cmake from web/sw.js), which keeps every file of the page in the browser's cache. Loaded after
// ferkit-shell.js (see shell/index.html). The page works the same without it (no service workers, a failed
// registration): it just needs the network to start.
//
// window.ferkit.offline:
//   state    'unsupported' (no service workers here: an old browser, or plain http other than localhost)
//            'registering' | 'installing' (downloading the files) | 'ready' (cached: the page starts offline)
//            'updated' (a new build was installed and took over: reload the page to run it) | 'failed' (message)
//   build    the build id of the cached files this page runs (null before they are cached)
//   message  why it failed (or why a new build could not be installed), or the update notice
'use strict';
(function () {
  const offline = window.ferkit.offline = { state: 'registering', build: null, message: '' };
  const sw = navigator.serviceWorker;
  if (!sw) {
    offline.state = 'unsupported';
    return;
  }
  function show(text, isError) {  // the shell's status line (ferkit-shell.js's say)
    const el = document.getElementById('status');
    el.textContent = text;
    el.style.display = '';
    el.classList.toggle('ferkit-error', !!isError);
  }
  function fail(message) {
    offline.state = 'failed';
    offline.message = 'ferkit cannot work offline here: ' + message;
    console.warn(offline.message);
    show(offline.message, true);
  }
  function buildOf(worker) {
    return new Promise((resolve) => {
      const ch = new MessageChannel();
      ch.port1.onmessage = (e) => resolve(e.data.build);
      worker.postMessage({ type: 'build' }, [ch.port2]);
    });
  }
  // The worker that served this page (null: the first visit, or a reload that bypassed it).
  const servedBy = sw.controller;
  if (servedBy) buildOf(servedBy).then((b) => { offline.build = b; offline.state = 'ready'; });
  // Once the new controller has activated (deleted the caches of other builds).
  function activated(worker) {
    return new Promise((resolve) => {
      if (worker.state === 'activated') resolve();
      else worker.addEventListener('statechange', () => { if (worker.state === 'activated') resolve(); });
    });
  }
  sw.addEventListener('controllerchange', () => {
    const now = sw.controller;
    if (servedBy) {  // a new build took over from the one this page runs: it stays as it is until a reload
      activated(now).then(() => {
        offline.state = 'updated';
        offline.message = 'A new version of ferkit was installed: reload the page to use it.';
        show(offline.message, false);
      });
    } else {         // the first install: these files are now cached
      Promise.all([buildOf(now), activated(now)]).then(([b]) => { offline.build = b; offline.state = 'ready'; });
    }
  });
  sw.addEventListener('message', (e) => {
    if (!e.data || e.data.type !== 'ferkit-offline-failed') return;
    if (offline.state === 'ready' || offline.state === 'updated') {  // a new build failed; this one is still cached
      offline.message = 'A new version of ferkit could not be installed (' + e.data.message + '); this one still ' +
                        'works offline.';
      console.warn(offline.message);
    } else {
      fail(e.data.message);
    }
  });
  window.addEventListener('load', () => {  // after the page's own downloads, which the install then revalidates
    sw.register('sw.js').then((reg) => {
      if (!servedBy && offline.state === 'registering') offline.state = 'installing';
      // A new build? Checked at once (the browser's own check after a visit comes up to a minute later), and every
      // hour in a page left open; offline the check fails, quietly.
      const check = () => reg.update().catch(() => {});
      if (servedBy) check();
      setInterval(check, 3600 * 1000);
    }, (e) => fail('the service worker did not register (' + e.message + ')'));
  });
})();
