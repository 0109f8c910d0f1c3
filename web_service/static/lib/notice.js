// A message that outlives the view that raised it ("Moved to the trash. Undo"): the next
// view shows it (the timeline does) until it is dismissed or acted on.
import { createStore } from './store.js';

/** `{id, text, tone?: 'info'|'warn', actionLabel?, action?: async () => void}` or null. */
export const notice = createStore(null);

let nextId = 1;
export function showNotice(value) {
  notice.set({ id: nextId++, tone: 'info', ...value });
}

export function clearNotice() {
  notice.set(null);
}
