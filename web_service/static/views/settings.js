// `#/settings`: one long page of sections with links to each — profile, password, language and
// time zone, AI provider, today's AI budget, API tokens, export and import. The sections live
// in views/settings/; `?section=<id>` opens the page at one of them.
import { html, useEffect, useRef } from '../vendor/preact-htm.module.js';
import { t } from '../lib/i18n.js';
import { href } from '../lib/router.js';
import { session } from '../lib/session.js';
import { useStore } from '../lib/store.js';
import { ErrorBox, useFocusHeading } from '../components/ui.js';
import { LanguageSection, PasswordSection, ProfileSection } from './settings/account.js';
import { BudgetSection, ProviderSection } from './settings/ai.js';
import { TokensSection } from './settings/tokens.js';
import { TransferSection } from './settings/transfer.js';

const SECTIONS = [
  ['profile', 'settings.profile.title'],
  ['password', 'settings.password.title'],
  ['language', 'settings.language.title'],
  ['ai', 'settings.ai.title'],
  ['budget', 'settings.budget.title'],
  ['tokens', 'settings.tokens.title'],
  ['transfer', 'settings.transfer.title'],
];

/** Scroll to a section and put the focus on its heading (the hash is the route, so no #anchor). */
function goTo(id, smooth = true) {
  const heading = document.getElementById(`settings-section-${id}-title`);
  if (!heading) return;
  const still = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  heading.scrollIntoView({ behavior: smooth && !still ? 'smooth' : 'auto', block: 'start' });
  heading.focus({ preventScroll: true });
}

export function SettingsView({ query }) {
  const { user } = useStore(session);
  const heading = useRef(null);
  const wanted = query && query.get('section');
  useFocusHeading(heading, []);
  useEffect(() => {
    if (wanted) goTo(wanted, false);
  }, [wanted]);

  const jump = (id) => (event) => {
    event.preventDefault();
    history.replaceState(null, '', href(`/settings?section=${id}`));
    goTo(id);
  };

  return html`<div class="page settings-page">
    <h1 ref=${heading} tabindex="-1">${t('settings.title')}</h1>
    <nav class="settings-toc" aria-label=${t('settings.toc')}>
      <ul>
        ${SECTIONS.map(([id, key]) => html`<li key=${id}>
          <a href=${href(`/settings?section=${id}`)} onClick=${jump(id)}>${t(key)}</a>
        </li>`)}
      </ul>
    </nav>
    ${user
      ? html`
        <${ProfileSection} user=${user} />
        <${PasswordSection} user=${user} />
        <${LanguageSection} user=${user} />`
      : html`<${ErrorBox} error=${t('settings.offline')} />`}
    <${ProviderSection} />
    <${BudgetSection} />
    <${TokensSection} />
    <${TransferSection} />
  </div>`;
}
