// Online/offline as the browser reports it, and how many records wait in the offline
// outbox; the header shows both. The offline module updates `pending`.
import { createStore } from './store.js';

export const connectivity = createStore({ online: navigator.onLine, pending: 0 });

window.addEventListener('online', () => connectivity.set((s) => ({ ...s, online: true })));
window.addEventListener('offline', () => connectivity.set((s) => ({ ...s, online: false })));
