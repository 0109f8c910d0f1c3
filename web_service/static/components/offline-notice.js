// On the login and registration pages while the browser is offline: signing in needs the
// server, so say so (a person signed in before on this device starts offline as that user
// instead, and never sees this).
import { html } from '../vendor/preact-htm.module.js';
import { connectivity } from '../lib/connectivity.js';
import { t } from '../lib/i18n.js';
import { useStore } from '../lib/store.js';

export function OfflineLoginNotice() {
  const { online } = useStore(connectivity);
  if (online) return null;
  return html`<div class="notice warn" role="status"><p>${t('offline.loginNeedsConnection')}</p></div>`;
}
