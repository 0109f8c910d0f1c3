// The offline outbox: records written without a connection wait in IndexedDB (so closing the
// tab loses nothing) and are pushed through `POST /api/v1/sync/push` when the app is online
// with a real session: at start, on the `online` event, and every 30 s while some wait.
//
// `outbox` holds the signed-in user's items, oldest first:
//   {id, user_id, op: 'upsert', data, base_version, status: 'waiting'|'conflict'|'error',
//    error?, server?, created_at}
// A push is idempotent on retry (the server recognises a batch it applied), so a flush cut off
// by a closed tab is simply sent again. One flush at a time, across tabs (navigator.locks).
import { api, ApiError } from './api.js';
import { connectivity } from './connectivity.js';
import { uuid7 } from './format.js';
import { getMeta, setMeta, withStore } from './idb.js';
import { liveEvents } from './live.js';
import { session } from './session.js';
import { createStore } from './store.js';

export const outbox = createStore([]);

const FLUSH_EVERY_MS = 30_000;
const BATCH = 500; // the server's cap per push
const channel = 'BroadcastChannel' in self ? new BroadcastChannel('jilu-outbox') : null;

let userId = null; // whose items the store shows
let canFlush = false; // a real session (an access token), not the offline one
let timer = null;
let flushing = null;
let again = null; // the flush queued behind the running one

// --- IndexedDB ---

const allItems = () => withStore('outbox', 'readonly', (store) => store.getAll());
const putItem = (item) => withStore('outbox', 'readwrite', (store) => store.put(item));
const getItem = (id) => withStore('outbox', 'readonly', (store) => store.get(id));
const deleteItem = (id) => withStore('outbox', 'readwrite', (store) => store.delete(id));

async function itemsOf(user) {
  if (!user) return [];
  const items = await withStore('outbox', 'readonly', (store) => store.index('user_id').getAll(user));
  return items.sort((a, b) => a.created_at.localeCompare(b.created_at));
}

/** A random id for this browser, kept so retries of a push are recognised (not a secret). */
async function deviceId() {
  let id = await getMeta('device_id');
  if (!id) {
    id = `web-${uuid7()}`;
    await setMeta('device_id', id);
  }
  return id;
}

// --- the store ---

async function reload() {
  const forUser = userId;
  let items = [];
  try {
    items = await itemsOf(forUser);
  } catch {
    // no IndexedDB: nothing can wait here
  }
  if (forUser !== userId) return;
  outbox.set(items);
  connectivity.set((s) => ({ ...s, pending: items.length }));
}

/** Tell the other tabs their copy of the outbox is stale. */
function announce() {
  if (channel) channel.postMessage('changed');
}

if (channel) channel.onmessage = () => reload();

const currentUserId = () => {
  const { status, user } = session.get();
  return status === 'signed-in' && user ? user.id : null;
};

// --- writing offline ---

/**
 * Keep a record made offline. `data` is a create body with a client id from `uuid7()`:
 * `{id, kind, title, content, tags, occurred_at, ai_opt_out}`. Resolves with the queued item
 * once it is safely in IndexedDB; it is pushed as soon as the app can.
 */
export async function queueRecord(data) {
  const owner = currentUserId();
  if (!owner) throw new Error('queueRecord needs a signed-in user');
  if (!data || !data.id) throw new Error('queueRecord needs the record\u2019s client id (uuid7())');
  const item = {
    id: data.id,
    user_id: owner,
    op: 'upsert',
    data: JSON.parse(JSON.stringify(data)),
    base_version: 0,
    status: 'waiting',
    created_at: new Date().toISOString(),
  };
  await putItem(item);
  await reload();
  announce();
  flushSoon();
  return item;
}

// --- pushing ---

function flushSoon() {
  if (canFlush && navigator.onLine) flushOutbox().catch(() => {});
}

/**
 * Push every waiting item of the signed-in user. Resolves with
 * `{applied, conflict, rejected}` counts (all 0 when there was nothing to do or no session);
 * rejects with the ApiError when the push itself failed (the items keep waiting).
 */
export function flushOutbox() {
  if (flushing) {
    // Items queued after the running flush read its list go in one more, right after it.
    if (!again) again = flushing.catch(() => {}).then(() => {
      again = null;
      return flushOutbox();
    });
    return again;
  }
  flushing = runFlush().finally(() => {
    flushing = null;
  });
  return flushing;
}

async function runFlush() {
  const counts = { applied: 0, conflict: 0, rejected: 0 };
  const owner = userId;
  if (!canFlush || !owner) return counts;
  const push = () => pushWaiting(owner, counts);
  try {
    if (navigator.locks) await navigator.locks.request('jilu-outbox-flush', push);
    else await push();
  } finally {
    await reload();
    announce();
  }
  return counts;
}

async function pushWaiting(owner, counts) {
  // Read inside the lock: another tab may have just pushed some of them.
  const waiting = (await itemsOf(owner)).filter((item) => item.status === 'waiting');
  if (!waiting.length) return;
  const device = await deviceId();
  for (let start = 0; start < waiting.length; start += BATCH) {
    if (owner !== userId || !canFlush) return; // signed out meanwhile
    const batch = waiting.slice(start, start + BATCH);
    let answer;
    try {
      answer = await api.post('/api/v1/sync/push', {
        device_id: device,
        items: batch.map(({ id, op, base_version, data }) => ({ id, op, base_version, data })),
      });
    } catch (error) {
      // A malformed batch (422) can never apply: say so on its items instead of retrying forever.
      if (error instanceof ApiError && error.status === 422) {
        for (const item of batch) await putItem({ ...item, status: 'error', error: error.detail ? JSON.stringify(error.detail) : error.code });
        counts.rejected += batch.length;
        continue;
      }
      throw error; // network, 5xx, 429: the items wait for the next try
    }
    const byId = new Map(batch.map((item) => [item.id, item]));
    for (const result of answer.results || []) {
      const item = byId.get(result.id);
      if (item) await settle(item, result, counts);
    }
  }
}

function sameRecord(data, server) {
  return (
    server &&
    !server.deleted &&
    server.kind === (data.kind || 'note') &&
    (server.title || null) === (data.title || null) &&
    server.content === (data.content || '')
  );
}

async function settle(item, result, counts) {
  if (result.status === 'applied' || (result.status === 'conflict' && item.base_version === 0 && sameRecord(item.data, result.record))) {
    // (The second case: the record reached the server already, by a request whose answer was
    // lost; it holds exactly what was written here.)
    await deleteItem(item.id);
    counts.applied += 1;
    const record = result.record || {};
    liveEvents.emit({ type: item.base_version === 0 ? 'created' : 'updated', record_id: item.id, version: record.version ?? null });
  } else if (result.status === 'conflict') {
    await putItem({ ...item, status: 'conflict', server: result.record || null, error: result.error || null });
    counts.conflict += 1;
  } else {
    await putItem({ ...item, status: 'error', error: result.error || null });
    counts.rejected += 1;
  }
}

/**
 * Settle an item that cannot be pushed as it is. `'mine'` keeps this device's version: pushed
 * again over the server's (`base_version` = the server's version; when the server deleted the
 * record, as a new record with a new id). `'theirs'` drops this device's version (also the way
 * to discard an item in `error`).
 */
export async function resolveConflict(id, choice) {
  const item = await getItem(id);
  if (!item || item.user_id !== currentUserId()) return;
  if (choice === 'theirs') {
    await deleteItem(id);
  } else if (choice === 'mine') {
    const server = item.server;
    const { id: _ignored, ...fields } = item.data;
    if (!server || server.deleted) {
      const newId = uuid7();
      await putItem({ id: newId, user_id: item.user_id, op: 'upsert', data: { ...fields, id: newId }, base_version: 0, status: 'waiting', created_at: item.created_at });
      await deleteItem(id);
    } else {
      // An edit of the server's record: a PATCH body, so no id.
      await putItem({ id: item.id, user_id: item.user_id, op: 'upsert', data: fields, base_version: server.version, status: 'waiting', created_at: item.created_at });
    }
  } else {
    throw new Error(`resolveConflict: unknown choice ${choice}`);
  }
  await reload();
  announce();
  flushSoon();
}

// --- started and stopped by lib/background.js ---

function onOnline() {
  flushSoon();
}

/**
 * Show `user`'s outbox; with `flush` (a real session) push it now, on `online`, and every 30 s
 * while items wait. Idempotent.
 */
export function startOutbox(user, { flush }) {
  const changed = user !== userId || flush !== canFlush;
  userId = user;
  canFlush = Boolean(flush);
  if (!timer) {
    window.addEventListener('online', onOnline);
    timer = setInterval(() => {
      if (outbox.get().some((item) => item.status === 'waiting')) flushSoon();
    }, FLUSH_EVERY_MS);
  }
  if (changed) reload().then(flushSoon);
}

/** Signed out: show nothing (the items stay in IndexedDB for when that user signs in again). */
export function stopOutbox() {
  userId = null;
  canFlush = false;
  clearInterval(timer);
  timer = null;
  window.removeEventListener('online', onOnline);
  outbox.set([]);
  connectivity.set((s) => ({ ...s, pending: 0 }));
}

/** Every user's items (for tests and diagnostics). */
export const outboxItemsOnDevice = allItems;
