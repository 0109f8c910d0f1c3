// Shows the pending notice (lib/notice.js), with its action (Undo…) and a Dismiss button.
import { html, useEffect, useState } from '../vendor/preact-htm.module.js';
import { errorMessage } from '../lib/api.js';
import { t } from '../lib/i18n.js';
import { clearNotice, notice } from '../lib/notice.js';
import { useStore } from '../lib/store.js';

export function NoticeBar() {
  const current = useStore(notice);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  useEffect(() => {
    setError(null);
  }, [current && current.id]);
  // The notice belongs to the page it was shown on.
  useEffect(() => () => clearNotice(), []);
  if (!current) return null;
  const act = async () => {
    setBusy(true);
    setError(null);
    try {
      await current.action();
      if (notice.get() === current) clearNotice();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return html`<div class=${'notice ' + (current.tone || 'info')} role="status">
    <p class="notice-text">${current.text}${error && html` <span class="notice-error">${error}</span>`}</p>
    <div class="notice-actions">
      ${current.action && html`<button type="button" class="secondary" disabled=${busy} onClick=${act}>${current.actionLabel}</button>`}
      <button type="button" class="link-button" onClick=${clearNotice}>${t('notice.dismiss')}</button>
    </div>
  </div>`;
}
