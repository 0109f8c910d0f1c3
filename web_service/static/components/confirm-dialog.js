// A modal question in a <dialog> (Esc or Cancel says no): `const [dialog, ask] = useConfirm()`,
// render `dialog`, then `if (await ask({title, message, confirmLabel, danger})) …`.
import { html, useCallback, useEffect, useRef, useState } from '../vendor/preact-htm.module.js';
import { t } from '../lib/i18n.js';

let nextId = 1;

export function useConfirm() {
  const [request, setRequest] = useState(null);
  const pending = useRef(null);
  const dialog = useRef(null);
  const titleId = useRef(`confirm-${nextId++}`).current;

  useEffect(() => {
    if (request && dialog.current && !dialog.current.open) dialog.current.showModal();
  }, [request]);
  useEffect(() => () => pending.current && pending.current(false), []);

  const ask = useCallback((options) => new Promise((resolve) => {
    if (pending.current) pending.current(false);
    pending.current = resolve;
    setRequest(options);
  }), []);

  const finish = (answer) => {
    const resolve = pending.current;
    pending.current = null;
    if (dialog.current && dialog.current.open) dialog.current.close();
    setRequest(null);
    if (resolve) resolve(answer);
  };

  const element = request && html`<dialog ref=${dialog} class="confirm-dialog" aria-labelledby=${titleId}
    onClose=${() => finish(false)}>
    <h2 id=${titleId}>${request.title}</h2>
    ${request.message && html`<p>${request.message}</p>`}
    <div class="actions">
      <button type="button" class=${request.danger ? 'danger' : ''} onClick=${() => finish(true)}>${request.confirmLabel}</button>
      <button type="button" class="secondary" autofocus onClick=${() => finish(false)}>${t('common.cancel')}</button>
    </div>
  </dialog>`;
  return [element, ask];
}
