// Small building blocks every view uses: loading, error (with retry), empty states, and a
// hook that loads data and exposes those states.
import { html, useCallback, useEffect, useRef, useState } from '../vendor/preact-htm.module.js';
import { errorMessage } from '../lib/api.js';
import { t } from '../lib/i18n.js';

export function Loading({ label }) {
  return html`<p class="loading" role="status" aria-live="polite"><span class="spinner" aria-hidden="true"></span>${label || t('common.loading')}</p>`;
}

/** A failed request: what failed, and a retry button when `onRetry` is given. */
export function ErrorBox({ error, onRetry, what }) {
  if (!error) return null;
  const message = typeof error === 'string' ? error : errorMessage(error);
  return html`<div class="error-box" role="alert">
    <p>${what ? t('error.loadFailed', { message }) : message}</p>
    ${onRetry && html`<button type="button" class="secondary" onClick=${onRetry}>${t('common.retry')}</button>`}
  </div>`;
}

export function Empty({ children }) {
  return html`<p class="empty">${children || t('common.empty')}</p>`;
}

/**
 * Run `load(signal)` now and whenever `deps` change: `{data, error, loading, reload, setData}`.
 * A newer load aborts the older one.
 */
export function useLoad(load, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const controller = useRef(null);
  const run = useCallback(() => {
    if (controller.current) controller.current.abort();
    const current = new AbortController();
    controller.current = current;
    setState((s) => ({ ...s, error: null, loading: true }));
    load(current.signal).then(
      (data) => !current.signal.aborted && setState({ data, error: null, loading: false }),
      (error) => !current.signal.aborted && error.name !== 'AbortError' && setState((s) => ({ ...s, error, loading: false })),
    );
  }, deps);
  useEffect(() => {
    run();
    return () => controller.current && controller.current.abort();
  }, [run]);
  const setData = useCallback((update) => setState((s) => ({ ...s, data: typeof update === 'function' ? update(s.data) : update })), []);
  return { ...state, reload: run, setData };
}

/** A button that copies `text` and says so for a moment. */
export function CopyButton({ text, label }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Clipboard refused (insecure context): select-and-copy by hand still works.
      return;
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return html`<button type="button" class="secondary" onClick=${copy} aria-label=${label || t('common.copy')}>
    ${copied ? t('common.copied') : label || t('common.copy')}
  </button>`;
}

/** Focus the page heading when a view opens, so keyboard and screen-reader users land there. */
export function useFocusHeading(ref, deps = []) {
  useEffect(() => {
    if (ref.current) ref.current.focus({ preventScroll: true });
  }, deps);
}
