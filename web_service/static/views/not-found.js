// Any path the app does not know.
import { html } from '../vendor/preact-htm.module.js';
import { t } from '../lib/i18n.js';
import { href } from '../lib/router.js';

export function NotFoundView() {
  return html`<section class="page">
    <h1 tabindex="-1">${t('page.notFound')}</h1>
    <p><a href=${href('/')}>${t('page.backHome')}</a></p>
  </section>`;
}
