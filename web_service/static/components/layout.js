// The frame around every signed-in page: header, navigation (a menu on narrow screens),
// online/offline and sync status, and the main landmark the views render into.
import { html, useEffect, useState } from '../vendor/preact-htm.module.js';
import { t } from '../lib/i18n.js';
import { errorMessage } from '../lib/api.js';
import { href } from '../lib/router.js';
import { session, logout } from '../lib/session.js';
import { useStore } from '../lib/store.js';
import { connectivity } from '../lib/connectivity.js';

const LINKS = [
  ['/', 'nav.timeline'],
  ['/new', 'nav.new'],
  ['/search', 'nav.search'],
  ['/assistant', 'nav.assistant'],
  ['/memories', 'nav.memories'],
  ['/digests', 'nav.digests'],
  ['/trash', 'nav.trash'],
  ['/settings', 'nav.settings'],
];

function isCurrent(link, path) {
  return link === '/' ? path === '/' || path.startsWith('/records') : path === link || path.startsWith(link + '/');
}

export function Layout({ path, children }) {
  const { user } = useStore(session);
  const status = useStore(connectivity);
  const [menuOpen, setMenuOpen] = useState(false);
  const [logoutError, setLogoutError] = useState(null);
  const [loggingOut, setLoggingOut] = useState(false);
  const doLogout = async () => {
    if (loggingOut) return;
    setLogoutError(null);
    setLoggingOut(true);
    try {
      await logout();
    } catch (error) {
      // Offline the session goes on (the cookie would open it again): say so, don't pretend.
      setLogoutError(t('nav.logoutFailed', { message: errorMessage(error) }));
    } finally {
      setLoggingOut(false);
    }
  };
  useEffect(() => setMenuOpen(false), [path]);
  const links = user && user.role === 'admin' ? [...LINKS, ['/admin', 'nav.admin']] : LINKS;
  return html`
    <a class="skip-link" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main').focus(); }}>${t('nav.skip')}</a>
    <header class="app-header">
      <a class="brand" href=${href('/')} aria-label=${t('app.name') + ' · ' + t('nav.timeline')}>
        <img src="${document.body.dataset.assets}/icons/icon.svg" alt="" width="28" height="28" />
        <span>${t('app.name')}</span>
      </a>
      <span class=${'net-status' + (status.online ? '' : ' offline')} role="status" aria-live="polite">
        ${!status.online && t('status.offline')}
        ${status.pending > 0 && html` <span class="badge pending">${t('status.pending', { count: status.pending })}</span>`}
      </span>
      <button type="button" class="menu-toggle secondary" aria-expanded=${menuOpen} aria-controls="main-nav"
        onClick=${() => setMenuOpen(!menuOpen)}>${t('nav.menu')}</button>
    </header>
    <nav id="main-nav" class=${'app-nav' + (menuOpen ? ' open' : '')} aria-label=${t('nav.label')}>
      <ul>
        ${links.map(([link, key]) => html`<li key=${link}>
          <a href=${href(link)} aria-current=${isCurrent(link, path) ? 'page' : undefined}>${t(key)}</a>
        </li>`)}
        <li><button type="button" class="link-button" disabled=${loggingOut} onClick=${doLogout}
          aria-describedby=${logoutError ? 'logout-error' : undefined}>${t('nav.logout')}</button></li>
      </ul>
      <p id="logout-error" class="form-error logout-error" role="alert">${logoutError || ''}</p>
    </nav>
    <main id="main" tabindex="-1">${children}</main>
  `;
}
