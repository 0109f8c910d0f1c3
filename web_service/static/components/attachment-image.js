// An attachment's image. `url` / `thumbnail_url` are signed links that need no Authorization
// header, loaded from this page's own origin (their path and query: the API's absolute URL may
// name another origin, JILU_PUBLIC_WEB_URL), so the browser loads them itself (img-src 'self')
// and caches them by their ETag; a link expires after an hour or more, and every fresh read
// of a record brings new ones.
import { html, useState } from '../vendor/preact-htm.module.js';
import { attachmentPath } from '../lib/api.js';
import { t } from '../lib/i18n.js';

export function AttachmentImage({ url, alt, className = '' }) {
  // Which URL has loaded or failed: a new URL (a fresh signature) starts over by itself.
  const [state, setState] = useState({ loaded: null, failed: null });
  if (state.failed === url) {
    return html`<span class=${'attachment-placeholder failed ' + className} role="img"
      aria-label=${t('attachment.imageFailed', { name: alt })}>!</span>`;
  }
  const loaded = state.loaded === url;
  // The spinner stands in until the image has arrived; the image loads (hidden) meanwhile.
  return html`${!loaded &&
    html`<span class=${'attachment-placeholder ' + className} role="img" aria-label=${alt}>
      <span class="spinner" aria-hidden="true"></span></span>`}<img class=${className} src=${attachmentPath(url)} alt=${alt}
      decoding="async" hidden=${!loaded}
      onLoad=${() => setState({ loaded: url, failed: null })}
      onError=${() => setState({ loaded: null, failed: url })} />`;
}
