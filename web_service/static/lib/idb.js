// What this device keeps in IndexedDB (database `jilu`): the offline outbox (`outbox`, keyed by
// record id) and a few values in `meta` (the device id, the last signed-in user's public
// profile). Never a token. A small promise wrapper; every call opens a short transaction.

const DB_NAME = 'jilu';
const DB_VERSION = 1;

let opening = null;

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function openDatabase() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      if (!('indexedDB' in self)) {
        reject(new Error('IndexedDB is not available'));
        return;
      }
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = () => {
        const db = request.result;
        if (!db.objectStoreNames.contains('outbox')) {
          db.createObjectStore('outbox', { keyPath: 'id' }).createIndex('user_id', 'user_id');
        }
        if (!db.objectStoreNames.contains('meta')) db.createObjectStore('meta');
      };
      request.onsuccess = () => {
        const db = request.result;
        // Another tab upgrading the schema: step aside so it can.
        db.onversionchange = () => {
          db.close();
          opening = null;
        };
        resolve(db);
      };
      request.onerror = () => reject(request.error);
      request.onblocked = () => reject(new Error('IndexedDB is blocked by another tab'));
    });
    opening.catch(() => {
      opening = null;
    });
  }
  return opening;
}

/**
 * Run `work(store)` in a transaction on `storeName`; resolves with what `work` answers (a
 * request's result when it answers an IDBRequest) once the transaction has committed.
 */
export async function withStore(storeName, mode, work) {
  const db = await openDatabase();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(storeName, mode);
    let result;
    transaction.oncomplete = () => resolve(result);
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error || new Error('transaction aborted'));
    const answer = work(transaction.objectStore(storeName));
    if (answer instanceof IDBRequest) promised(answer).then((value) => (result = value), () => {});
    else result = answer;
  });
}

export const getMeta = (key) => withStore('meta', 'readonly', (store) => store.get(key));
export const setMeta = (key, value) => withStore('meta', 'readwrite', (store) => store.put(value, key));
export const deleteMeta = (key) => withStore('meta', 'readwrite', (store) => store.delete(key));

// --- the last signed-in user, for starting offline ---

const PROFILE_FIELDS = ['id', 'username', 'display_name', 'role', 'language', 'time_zone'];

/** Keep the public part of the signed-in user's profile (no tokens, no e-mail). */
export async function rememberProfile(user) {
  if (!user || !user.id) return;
  const profile = {};
  for (const field of PROFILE_FIELDS) profile[field] = user[field] ?? null;
  try {
    await setMeta('profile', profile);
  } catch {
    // No IndexedDB (a private window in some browsers): the app just cannot start offline.
  }
}

/** The last signed-in user's public profile, or null. */
export async function recallProfile() {
  try {
    return (await getMeta('profile')) || null;
  } catch {
    return null;
  }
}

export async function forgetProfile() {
  try {
    await deleteMeta('profile');
  } catch {
    // nothing kept, nothing to forget
  }
}
