// The record kinds as a <select>; with `allLabel` it offers "any kind" first (for filters).
import { html } from '../vendor/preact-htm.module.js';
import { t } from '../lib/i18n.js';

export const KINDS = ['note', 'diary', 'todo', 'photo', 'screenshot', 'voice', 'link'];

export function KindSelect({ id, value, onChange, allLabel, label }) {
  return html`<select id=${id} value=${value || ''} aria-label=${label}
    onChange=${(event) => onChange(event.currentTarget.value)}>
    ${allLabel !== undefined && html`<option value="">${allLabel}</option>`}
    ${KINDS.map((kind) => html`<option key=${kind} value=${kind}>${t(`kind.${kind}`)}</option>`)}
  </select>`;
}
