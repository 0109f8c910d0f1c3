// Dates and sizes for people, in the UI language and the user's time zone.
import { language, t } from './i18n.js';
import { createStore } from './store.js';

/** The signed-in user's IANA time zone (their setting), else the browser's. */
export const timeZone = createStore(Intl.DateTimeFormat().resolvedOptions().timeZone);

const locale = () => (language.get() === 'en' ? 'en-GB' : 'zh-CN');

export function formatDateTime(iso) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short', timeZone: timeZone.get() }).format(new Date(iso));
}

export function formatTime(iso) {
  return new Intl.DateTimeFormat(locale(), { timeStyle: 'short', timeZone: timeZone.get() }).format(new Date(iso));
}

/** `YYYY-MM-DD` of an instant in the user's time zone (for grouping by day). */
export function dayKey(iso) {
  return new Intl.DateTimeFormat('en-CA', { timeZone: timeZone.get() }).format(new Date(iso));
}

/** A date header: today, yesterday, or the date itself. */
export function formatDay(iso) {
  const key = dayKey(iso);
  const now = new Date();
  if (key === dayKey(now.toISOString())) return t('date.today');
  if (key === dayKey(new Date(now.getTime() - 86_400_000).toISOString())) return t('date.yesterday');
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'full', timeZone: timeZone.get() }).format(new Date(iso));
}

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A value for <input type="datetime-local"> from an ISO instant (browser-local time). */
export function toLocalInput(iso) {
  const date = iso ? new Date(iso) : new Date();
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return shifted.toISOString().slice(0, 16);
}

/** An ISO instant with time zone from an <input type="datetime-local"> value. */
export function fromLocalInput(value) {
  return value ? new Date(value).toISOString() : null;
}

/** A time-ordered UUID (v7) for records made on this device, online or offline. */
export function uuid7() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
