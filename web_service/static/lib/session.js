// Who is signed in. `session` holds {status: 'loading'|'anonymous'|'signed-in', user}.
// On start the refresh cookie is tried once, so a reload keeps the person signed in.
import { api, ApiError, login as apiLogin, logout as apiLogout, onSessionEnded, refresh } from './api.js';
import { setLanguage } from './i18n.js';
import { timeZone } from './format.js';
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
  return user;
}

/** At start-up: signed in if the refresh cookie still opens a session. Offline, the app
 * starts in offline mode (`offline: true`) so records can still be written. */
export async function restoreSession() {
  try {
    await refresh();
    await loadUser();
  } catch (error) {
    if (error instanceof ApiError && error.isNetwork) {
      session.set({ status: 'signed-in', user: null, offline: true });
    } else {
      session.set({ status: 'anonymous', user: null });
    }
  }
}

export async function login(username, password) {
  await apiLogin(username, password);
  return loadUser();
}

export async function logout() {
  await apiLogout();
}

/** After the profile was edited: keep the new copy and its preferences. */
export function updateUser(user) {
  applyPreferences(user);
  session.set((current) => ({ ...current, user }));
}

onSessionEnded(() => session.set({ status: 'anonymous', user: null }));
