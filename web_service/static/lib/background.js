// Work that runs beside the views once the session is known: the service worker (the app
// shell offline), live record events, and the offline outbox. They follow the session:
// signed in → live events and pushing the outbox; offline (the remembered user, no token) →
// the outbox only; signed out → nothing. When the connection returns to an offline session,
// the refresh cookie is tried again for a real one, and the outbox is pushed.
import { startLive, stopLive } from './live.js';
import { startOutbox, stopOutbox } from './offline.js';
import { restoreSession, session } from './session.js';

const RETRY_SESSION_MS = 30_000; // the browser says online but the server did not answer

let started = false;
let restoring = null;

function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return; // not a secure context (plain http on a LAN)
  navigator.serviceWorker.register('/sw.js').catch(() => {
    // The app works without it, only not offline.
  });
}

function follow(state) {
  const user = state.status === 'signed-in' ? state.user : null;
  if (user && !state.offline) {
    startOutbox(user.id, { flush: true });
    startLive();
  } else {
    stopLive();
    if (user) startOutbox(user.id, { flush: false });
    else stopOutbox();
  }
}

/** Offline session (or no session because the server could not be reached): try for a real one. */
function reconnectSession() {
  const state = session.get();
  if (!state.offline || restoring || !navigator.onLine) return;
  restoring = restoreSession().finally(() => {
    restoring = null;
  });
}

export function startBackground() {
  if (started) return;
  started = true;
  registerServiceWorker();
  session.subscribe(follow);
  follow(session.get());
  window.addEventListener('online', reconnectSession);
  setInterval(reconnectSession, RETRY_SESSION_MS);
}
