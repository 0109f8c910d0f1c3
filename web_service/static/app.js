// The web app's entry point: routes, the signed-in frame, and start-up.
import { html, render } from './vendor/preact-htm.module.js';
import { language } from './lib/i18n.js';
import { match, navigate, useRoute } from './lib/router.js';
import { restoreSession, session } from './lib/session.js';
import { useStore } from './lib/store.js';
import { Layout } from './components/layout.js';
import { Loading } from './components/ui.js';
import { LoginView } from './views/login.js';
import { RegisterView } from './views/register.js';
import { TimelineView } from './views/timeline.js';
import { ComposerView } from './views/composer.js';
import { RecordView } from './views/record.js';
import { SearchView } from './views/search.js';
import { AssistantView } from './views/assistant.js';
import { MemoriesView } from './views/memories.js';
import { DigestsView } from './views/digests.js';
import { TrashView } from './views/trash.js';
import { SettingsView } from './views/settings.js';
import { AdminView } from './views/admin.js';
import { NotFoundView } from './views/not-found.js';
import { startBackground } from './lib/background.js';

const PUBLIC_ROUTES = [
  ['/login', LoginView],
  ['/register', RegisterView],
];

const ROUTES = [
  ['/', TimelineView],
  ['/new', ComposerView],
  ['/records/:id', RecordView],
  ['/search', SearchView],
  ['/assistant', AssistantView],
  ['/assistant/:id', AssistantView],
  ['/memories', MemoriesView],
  ['/digests', DigestsView],
  ['/trash', TrashView],
  ['/settings', SettingsView],
  ['/admin', AdminView],
];

function resolve(routes, path) {
  for (const [pattern, view] of routes) {
    const params = match(pattern, path);
    if (params) return { view, params };
  }
  return null;
}

function App() {
  const state = useStore(session);
  useStore(language); // re-render everything when the language changes
  const route = useRoute();

  if (state.status === 'loading') return html`<main id="main" class="boot"><${Loading} /></main>`;

  if (state.status === 'anonymous') {
    const found = resolve(PUBLIC_ROUTES, route.path);
    if (!found) {
      navigate('/login', { replace: true });
      return null;
    }
    return html`<main id="main" class="public" tabindex="-1"><${found.view} params=${found.params} query=${route.query} /></main>`;
  }

  if (resolve(PUBLIC_ROUTES, route.path)) {
    navigate('/', { replace: true });
    return null;
  }
  const found = resolve(ROUTES, route.path);
  const View = found ? found.view : NotFoundView;
  return html`<${Layout} path=${route.path}>
    <${View} key=${route.path} params=${found ? found.params : {}} query=${route.query} />
  <//>`;
}

// `/` anywhere but in a text field opens search with the cursor in the box.
document.addEventListener('keydown', (event) => {
  if (event.key !== '/' || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target.closest && target.closest('input, textarea, select, [contenteditable="true"]')) return;
  if (session.get().status !== 'signed-in') return;
  event.preventDefault();
  navigate('/search?focus=1');
});

render(html`<${App} />`, document.getElementById('app'));
restoreSession().then(startBackground);
