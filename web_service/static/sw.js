// The service worker: the app shell offline. Served at /sw.js (scope /) with the assets prefix
// (/assets/<version>) and the version filled in by web_service; a new version installs a new
// cache and drops the old one.
//
// - navigations: the network first, the cached `/` when it cannot be reached;
// - `/assets/…` (versioned, immutable): the cache first;
// - `/api/…`: never touched, never cached (no record or token ever lands in Cache Storage);
// - anything else: the network (the manifest falls back to its cached copy offline).
const VERSION = '__VERSION__';
const ASSETS = '__ASSETS__';
const CACHE = `jilu-shell-${VERSION}`;

// Every script, style and vector icon of the app, relative to ASSETS: web_service fills the list in
// from the files it serves (web_service/app/web/assets.py, `app_shell`), so nothing is missed.
const APP_SHELL = __APP_SHELL__;

// Outside ASSETS: the page itself and the manifest as served (both with ASSETS filled in).
const PAGES = ['/', '/manifest.webmanifest'];

self.addEventListener('install', (event) => {
  self.skipWaiting();
  // Versioned assets never change under their URL, so the copies the page has just loaded
  // come from the HTTP cache instead of a second download; the pages are revalidated.
  const requests = [
    ...PAGES.map((url) => new Request(url, { cache: 'no-cache' })),
    ...APP_SHELL.map((path) => new Request(`${ASSETS}/${path}`)),
  ];
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(requests)));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name !== CACHE && name.startsWith('jilu-')) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

async function networkFirst(request, fallbackUrl) {
  try {
    return await fetch(request);
  } catch (error) {
    const cached = await caches.match(fallbackUrl, { cacheName: CACHE });
    if (cached) return cached;
    throw error;
  }
}

async function cacheFirst(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok && new URL(request.url).pathname.startsWith(`${ASSETS}/`)) {
    await cache.put(request, response.clone());
  }
  return response;
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith('/api/')) return; // straight to the network, never cached
  if (request.mode === 'navigate') {
    event.respondWith(networkFirst(request, '/'));
  } else if (url.pathname.startsWith('/assets/')) {
    event.respondWith(cacheFirst(request));
  } else if (url.pathname === '/manifest.webmanifest') {
    event.respondWith(networkFirst(request, '/manifest.webmanifest'));
  }
  // anything else: the network, as if there were no service worker
});
