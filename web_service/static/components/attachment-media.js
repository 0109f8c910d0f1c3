// Attachments that are not thumbnails: audio to play and other files to download, both
// through attachmentUrl() (a blob: URL, kept per attachment and content: a download keeps its
// file name, and audio does not stop when its signed URL expires in a tab left open).
import { html, useEffect, useState } from '../vendor/preact-htm.module.js';
import { attachmentUrl, errorMessage } from '../lib/api.js';
import { t } from '../lib/i18n.js';

export function AttachmentAudio({ attachment, name }) {
  const [state, setState] = useState({ src: null, error: null });
  // A new signed URL of the same file is no reason to fetch it again.
  const key = `${attachment.id}:${attachment.sha256}`;
  useEffect(() => {
    let live = true;
    attachmentUrl(attachment).then(
      (src) => live && setState({ src, error: null }),
      (error) => live && setState({ src: null, error }),
    );
    return () => {
      live = false;
    };
  }, [key]);
  if (state.error) return html`<p class="small error-text" role="alert">${t('attachment.loadFailed', { message: errorMessage(state.error) })}</p>`;
  if (!state.src) return html`<p class="small muted" role="status">${t('common.loading')}</p>`;
  return html`<audio controls preload="metadata" src=${state.src} aria-label=${name}></audio>`;
}

/** A button that fetches the file and saves it under its name. */
export function DownloadButton({ attachment, name }) {
  const [state, setState] = useState({ busy: false, error: null });
  const download = async () => {
    setState({ busy: true, error: null });
    try {
      const src = await attachmentUrl(attachment);
      const link = document.createElement('a');
      link.href = src;
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setState({ busy: false, error: null });
    } catch (error) {
      setState({ busy: false, error });
    }
  };
  return html`<span class="download">
    <button type="button" class="secondary small-button" disabled=${state.busy} onClick=${download}
      aria-label=${t('attachment.download', { name })}>${state.busy ? t('common.loading') : t('attachment.downloadShort')}</button>
    ${state.error && html`<span class="small error-text" role="alert">${errorMessage(state.error)}</span>`}
  </span>`;
}
