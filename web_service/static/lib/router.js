// Hash routes (`#/records/<id>?tab=x`): they work offline from the cached shell and need
// nothing from the server. `useRoute()` re-renders on every change of location.hash.
import { useEffect, useState } from '../vendor/preact-htm.module.js';

export function currentRoute() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(query) };
}

/** Go to `path` (e.g. '/records/123' or '/search?q=x'); `replace` keeps history short. */
export function navigate(path, { replace = false } = {}) {
  const hash = '#' + path;
  if (replace) history.replaceState(null, '', hash);
  else history.pushState(null, '', hash);
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}

/** The href for an in-app link. */
export const href = (path) => '#' + path;

export function useRoute() {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const update = () => setRoute(currentRoute());
    window.addEventListener('hashchange', update);
    window.addEventListener('popstate', update);
    return () => {
      window.removeEventListener('hashchange', update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** Match `path` against a pattern like '/records/:id'; the params, or null. */
export function match(pattern, path) {
  const want = pattern.split('/');
  const have = path.split('/');
  if (want.length !== have.length) return null;
  const params = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(':')) {
      try {
        params[want[i].slice(1)] = decodeURIComponent(have[i]);
      } catch {
        return null; // a malformed address (`%E0`): no match, so the not-found page
      }
    } else if (want[i] !== have[i]) return null;
  }
  return params;
}
