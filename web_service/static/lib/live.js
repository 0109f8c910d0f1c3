// Live record events: `liveEvents.subscribe(fn)` calls fn with
// `{type: 'created'|'updated'|'deleted'|'analyzed', record_id, version}` or `{type: 'reset'}`
// (refetch everything shown), and answers the unsubscribe function.
//
// The source is the SSE stream `GET /api/v1/events` (read with fetch, since it needs the bearer
// header), resumed with `Last-Event-ID` after a break (back-off 1 s → 30 s). While it is broken,
// `/api/v1/sync/changes` is polled every 5 s instead. lib/background.js starts and stops this
// with the session; nothing is tried while the browser says it is offline.
import { ApiError, api, query, refresh, stream } from './api.js';

function createEmitter() {
  const listeners = new Set();
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit(event) {
      for (const listener of [...listeners]) {
        try {
          listener(event);
        } catch (error) {
          // One broken listener must not silence the others; report it on its own.
          setTimeout(() => {
            throw error;
          });
        }
      }
    },
  };
}

export const liveEvents = createEmitter();

const RECORD_TYPES = new Set(['created', 'updated', 'deleted', 'analyzed']);
const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30_000;
const POLL_MS = 5000;
const OPEN_AFTER_MS = 3000; // a stream up this long counts as healthy: the back-off starts over

const state = {
  running: false,
  generation: 0, // bumped on every start/stop: callbacks of an older run do nothing
  controller: null, // the AbortController of the stream being read, if any
  lastEventId: null,
  cursor: null, // the sync cursor to poll from (from `hello`, or paged for lazily)
  delay: FIRST_DELAY_MS,
  retryTimer: null,
  pollTimer: null,
  polling: false,
};

function emitRecordEvent(data) {
  if (data && RECORD_TYPES.has(data.type) && data.record_id) {
    liveEvents.emit({ type: data.type, record_id: data.record_id, version: data.version ?? null });
  }
}

async function connect() {
  const generation = state.generation;
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  if (!state.running || state.controller || !navigator.onLine) return;
  const controller = new AbortController();
  state.controller = controller;
  let ended = false;
  // Any event means the stream is up: polling stops. The back-off starts over only once the
  // stream has stayed up a while, so a server that answers and hangs up at once (say, `end`
  // after `hello` every time) is not hammered.
  const markOpen = () => {
    if (generation === state.generation && !ended && state.pollTimer) stopPolling({ catchUp: true });
  };
  const openTimer = setTimeout(() => {
    if (generation !== state.generation || ended) return;
    markOpen();
    state.delay = FIRST_DELAY_MS;
  }, OPEN_AFTER_MS);
  try {
    const headers = state.lastEventId ? { 'Last-Event-ID': state.lastEventId } : {};
    await stream('/api/v1/events', { signal: controller.signal, headers }, (name, data, id) => {
      if (generation !== state.generation || ended) return;
      markOpen();
      if (id) state.lastEventId = id;
      if (name === 'hello') {
        if (data && data.cursor !== undefined && data.cursor !== null) state.cursor = Number(data.cursor);
      } else if (name === 'record') {
        emitRecordEvent(data);
      } else if (name === 'reset') {
        liveEvents.emit({ type: 'reset' });
      } else if (name === 'end') {
        ended = true;
        controller.abort();
      }
    });
  } catch {
    // Aborted by stop() or by going offline: whoever aborted decides what comes next. (A
    // refused refresh ended the session, and background.js has stopped this run already.)
    if (controller.signal.aborted && !ended) return;
  } finally {
    clearTimeout(openTimer);
    if (state.controller === controller) state.controller = null;
  }
  if (generation !== state.generation) return;
  if (ended) {
    await afterEnd(generation);
    return;
  }
  broken();
}

/** The server said the session behind the stream is over: if a refresh still opens one (the
 * access token had only expired) go on; otherwise api.js ends the session for everyone. */
async function afterEnd(generation) {
  try {
    await refresh();
  } catch (error) {
    if (generation !== state.generation) return;
    if (error instanceof ApiError && error.isNetwork) broken();
    return; // refused: the session has ended and background.js stops this
  }
  if (generation === state.generation) retryLater();
}

function broken() {
  startPolling();
  retryLater();
}

function retryLater() {
  const delay = state.delay;
  state.delay = Math.min(state.delay * 2, MAX_DELAY_MS);
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(connect, delay);
}

// --- the polling fallback ---

/** Poll now and every 5 s (idempotent). */
function startPolling() {
  if (state.pollTimer || !state.running) return;
  state.pollTimer = setInterval(poll, POLL_MS);
  poll();
}

/** The stream is back: stop, after one last poll for what changed until it was (`catchUp`). */
function stopPolling({ catchUp = false } = {}) {
  clearInterval(state.pollTimer);
  state.pollTimer = null;
  if (catchUp && state.cursor !== null) poll();
}

async function changesSince(since, limit) {
  return api.get('/api/v1/sync/changes' + query({ since, limit }));
}

/** Where the change feed ends now (paged through once, only when no `hello` told us). */
async function headCursor() {
  let cursor = 0;
  for (;;) {
    const page = await changesSince(cursor, 500);
    cursor = page.cursor;
    if (!page.has_more) return cursor;
  }
}

async function poll() {
  if (state.polling || !navigator.onLine) return;
  const generation = state.generation;
  state.polling = true;
  try {
    if (state.cursor === null) {
      const cursor = await headCursor();
      if (generation !== state.generation) return;
      state.cursor = cursor;
      // What changed while nothing was listening is unknown: views refetch.
      liveEvents.emit({ type: 'reset' });
      return;
    }
    for (;;) {
      const page = await changesSince(state.cursor, 200);
      if (generation !== state.generation) return;
      state.cursor = page.cursor;
      for (const change of page.changes) {
        if (change.deleted) liveEvents.emit({ type: 'deleted', record_id: change.id, version: change.version });
        else liveEvents.emit({ type: change.version === 1 ? 'created' : 'updated', record_id: change.id, version: change.version });
      }
      if (!page.has_more) return;
    }
  } catch (error) {
    // A cursor ahead of the server (restored from a backup meanwhile): start again from its
    // head on the next tick, which resets the views. Anything else: try again on the next tick.
    if (error instanceof ApiError && error.code === 'cursor_ahead' && generation === state.generation) state.cursor = null;
  } finally {
    state.polling = false;
  }
}

// --- connectivity ---

function onOnline() {
  state.delay = FIRST_DELAY_MS;
  connect();
}

function onOffline() {
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  if (state.controller) state.controller.abort();
  state.controller = null;
  // The poll timer stays: it skips its turns while offline and catches up after.
  startPolling();
}

/** Start listening (idempotent). */
export function startLive() {
  if (state.running) return;
  state.running = true;
  state.generation += 1;
  state.delay = FIRST_DELAY_MS;
  window.addEventListener('online', onOnline);
  window.addEventListener('offline', onOffline);
  connect();
}

/** Stop everything and forget where we were (the next start may be another user). */
export function stopLive() {
  if (!state.running) return;
  state.running = false;
  state.generation += 1;
  window.removeEventListener('online', onOnline);
  window.removeEventListener('offline', onOffline);
  clearTimeout(state.retryTimer);
  state.retryTimer = null;
  stopPolling();
  if (state.controller) state.controller.abort();
  state.controller = null;
  state.lastEventId = null;
  state.cursor = null;
  state.polling = false;
}
