// Who is signed in. `session` holds {status: 'loading'|'anonymous'|'signed-in', user}.
// On start the refresh cookie is tried once when someone signed in on this device before,
// so a reload keeps the person signed in.
import { api, ApiError, login as apiLogin, logout as apiLogout, onSessionEnded, refresh } from './api.js';
import { setLanguage } from './i18n.js';
import { timeZone } from './format.js';
import { forgetProfile, recallProfile, rememberProfile } from './idb.js';
import { createStore } from './store.js';

export const session = createStore({ status: 'loading', user: null });

function applyPreferences(user) {
  if (user.language) setLanguage(user.language);
  if (user.time_zone) timeZone.set(user.time_zone);
}

async function loadUser() {
  const user = await api.get('/api/v1/users/me');
  applyPreferences(user);
  session.set({ status: 'signed-in', user });
  rememberProfile(user);
  return user;
}

/** Offline: signed in as the last user seen on this device (no token; nothing is fetched). */
async function startOffline() {
  const user = await recallProfile();
  if (user) {
    applyPreferences(user);
    session.set({ status: 'signed-in', user, offline: true });
  } else {
    session.set({ status: 'anonymous', user: null, offline: true });
  }
}

/** Only a 401/403 says the person is signed out; no connection, a 5xx or a 429 says nothing. */
function serverUnavailable(error) {
  if (!(error instanceof ApiError)) return false;
  return error.isNetwork || error.status >= 500 || error.status === 429;
}

/** At start-up: signed in if the refresh cookie still opens a session. Offline, the app
 * starts in offline mode (`offline: true`) as the last user signed in on this device, so
 * records can still be written; with nobody remembered it is anonymous (login needs a
 * connection). Called again when the connection returns. */
export async function restoreSession() {
  if (!navigator.onLine) return startOffline();
  // Nobody signed in on this device: no refresh cookie to try (and no 401 to log).
  if (!(await recallProfile())) {
    session.set({ status: 'anonymous', user: null });
    return;
  }
  try {
    await refresh();
    await loadUser();
  } catch (error) {
    if (serverUnavailable(error)) {
      // Not an answer about the session (offline, the server failing or busy): offline mode
      // with the remembered profile; lib/background.js tries again later.
      await startOffline();
    } else {
      session.set({ status: 'anonymous', user: null });
    }
  }
}

/** Log in; `preferences` ({language, time_zone}) are saved to the profile first, so the app
 * opens in them (a zone the server does not know leaves the language alone to be saved;
 * failing to save them does not fail the login). */
export async function login(username, password, preferences) {
  await apiLogin(username, password);
  if (preferences) {
    try {
      await api.patch('/api/v1/users/me', preferences);
    } catch {
      await api.patch('/api/v1/users/me', { language: preferences.language }).catch(() => {});
    }
  }
  return loadUser();
}

export async function logout() {
  await apiLogout();
}

/** After the profile was edited: keep the new copy and its preferences. */
export function updateUser(user) {
  applyPreferences(user);
  session.set((current) => ({ ...current, user }));
  rememberProfile(user);
}

onSessionEnded(() => {
  forgetProfile();
  session.set({ status: 'anonymous', user: null });
});
