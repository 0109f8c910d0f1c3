// An attachment's image. The attachment routes need the Authorization header, which an
// <img src> cannot send, so the bytes come through attachmentUrl() (cached blob: URLs).
import { html, useEffect, useState } from '../vendor/preact-htm.module.js';
import { attachmentUrl } from '../lib/api.js';
import { t } from '../lib/i18n.js';

export function AttachmentImage({ url, alt, className = '' }) {
  const [state, setState] = useState({ src: null, failed: false });
  useEffect(() => {
    let live = true;
    setState({ src: null, failed: false });
    attachmentUrl(url).then(
      (src) => live && setState({ src, failed: false }),
      () => live && setState({ src: null, failed: true }),
    );
    return () => {
      live = false;
    };
  }, [url]);
  if (state.failed) {
    return html`<span class=${'attachment-placeholder failed ' + className} role="img"
      aria-label=${t('attachment.imageFailed', { name: alt })}>!</span>`;
  }
  if (!state.src) {
    return html`<span class=${'attachment-placeholder ' + className} role="img" aria-label=${alt}>
      <span class="spinner" aria-hidden="true"></span></span>`;
  }
  return html`<img class=${className} src=${state.src} alt=${alt} decoding="async" />`;
}
