// What Jilu is, for someone who has never seen it: shown above the login and registration forms.
import { html } from '../vendor/preact-htm.module.js';
import { t } from '../lib/i18n.js';

export function AuthIntro() {
  return html`<div class="auth-intro">
    <img src=${`${document.body.dataset.assets}/icons/icon.svg`} alt="" width="48" height="48" />
    <p class="auth-brand">${t('app.name')}</p>
    <p class="auth-tagline">${t('app.tagline')}</p>
    <p class="auth-pitch">${t('auth.pitch')}</p>
  </div>`;
}
