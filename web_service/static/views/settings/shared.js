// Pieces the settings sections share: a section frame, field errors from a 422, status lines.
import { html } from '../../vendor/preact-htm.module.js';
import { ApiError, errorMessage } from '../../lib/api.js';
import { t } from '../../lib/i18n.js';

/** One settings section: a card with its own heading, reachable from the page's section links. */
export function Section({ id, title, intro, children }) {
  return html`<section class="card settings-section" id=${`settings-section-${id}`} aria-labelledby=${`settings-section-${id}-title`}>
    <h2 id=${`settings-section-${id}-title`} tabindex="-1">${title}</h2>
    ${intro && html`<p class="muted small">${intro}</p>`}
    ${children}
  </section>`;
}

/** `{field: message}` from a 422 `validation_error` (fields as `body.email` or `email`). */
export function fieldProblems(error) {
  const problems = {};
  if (!(error instanceof ApiError) || error.status !== 422 || !Array.isArray(error.detail)) return problems;
  for (const problem of error.detail) {
    const field = String(problem.field || (problem.loc || []).join('.')).replace(/^(body|query|path)\./, '');
    if (field && !problems[field]) problems[field] = problem.message || problem.msg || '';
  }
  return problems;
}

/** The weak-password rules of the server, in the UI language (the server's sentence otherwise). */
export function passwordProblem(message) {
  const rules = [
    [/at least/, 'settings.password.rule.short'],
    [/at most/, 'settings.password.rule.long'],
    [/different characters/, 'settings.password.rule.simple'],
    [/most common/, 'settings.password.rule.common'],
    [/username/, 'settings.password.rule.username'],
  ];
  for (const [pattern, key] of rules) if (pattern.test(message)) return t(key);
  return message;
}

/** The error under a field; `id` is what the input's aria-describedby points at. */
export function FieldError({ id, message }) {
  if (!message) return null;
  return html`<p class="field-error" id=${id}>${message}</p>`;
}

/** A form's outcome: a success line (polite) or the error (assertive). */
export function FormStatus({ ok, error }) {
  if (error) return html`<p class="form-status bad" role="alert">${typeof error === 'string' ? error : errorMessage(error)}</p>`;
  return html`<p class="form-status ok" role="status" aria-live="polite">${ok || ''}</p>`;
}

/** Props that tie an input to its hint and error. */
export function described(id, { hint = false, error } = {}) {
  const ids = [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(' ');
  return { 'aria-describedby': ids || undefined, 'aria-invalid': error ? 'true' : undefined };
}
