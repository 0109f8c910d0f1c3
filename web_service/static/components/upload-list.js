// Uploading a record's files one after another, each with a progress bar, a Cancel button
// and its own error (413 too large, 415 a type not taken, …).
import { html, useCallback, useRef, useState } from '../vendor/preact-htm.module.js';
import { errorMessage, upload } from '../lib/api.js';
import { t } from '../lib/i18n.js';

function uploadError(error) {
  if (error && error.status === 413) return t('upload.tooLarge');
  if (error && error.status === 415) return t('upload.unsupported');
  return errorMessage(error);
}

/**
 * `{uploads, start(recordId, items), cancel(key)}`; `items` are `pickedFile()`s.
 * `start` resolves, when every file is done, failed or cancelled, to the keys uploaded.
 */
export function useUploads() {
  const [uploads, setUploads] = useState([]);
  const aborts = useRef(new Map());
  const cancelled = useRef(new Set());
  const update = (key, patch) => setUploads((list) => list.map((u) => (u.key === key ? { ...u, ...patch } : u)));

  const start = useCallback(async (recordId, items) => {
    cancelled.current.clear();
    setUploads(items.map((item) => ({ key: item.key, name: item.file.name, progress: 0, status: 'waiting', error: null })));
    const done = [];
    // One at a time: every upload is a new version of the record.
    for (const item of items) {
      if (cancelled.current.has(item.key)) continue;
      const form = new FormData();
      form.append('file', item.file, item.file.name);
      update(item.key, { status: 'uploading' });
      const { promise, abort } = upload(`/api/v1/records/${encodeURIComponent(recordId)}/attachments`, form, {
        onProgress: (fraction) => update(item.key, { progress: fraction }),
      });
      aborts.current.set(item.key, abort);
      try {
        await promise;
        update(item.key, { status: 'done', progress: 1 });
        done.push(item.key);
      } catch (error) {
        if (error && error.name === 'AbortError') update(item.key, { status: 'cancelled' });
        else update(item.key, { status: 'error', error: uploadError(error) });
      } finally {
        aborts.current.delete(item.key);
      }
    }
    return done;
  }, []);

  const cancel = useCallback((key) => {
    cancelled.current.add(key);
    const abort = aborts.current.get(key);
    if (abort) abort();
    else update(key, { status: 'cancelled' });
  }, []);

  const reset = useCallback(() => setUploads([]), []);
  return { uploads, start, cancel, reset };
}

export function UploadList({ uploads, onCancel }) {
  if (!uploads.length) return null;
  return html`<ul class="upload-list" aria-label=${t('upload.list')}>
    ${uploads.map((u) => html`<li key=${u.key} class=${'upload ' + u.status}>
      <div class="upload-head">
        <span class="upload-name">${u.name}</span>
        <span class="upload-status small" role=${u.status === 'error' ? 'alert' : undefined}>
          ${u.status === 'error' ? u.error : t(`upload.status.${u.status}`)}
        </span>
        ${(u.status === 'waiting' || u.status === 'uploading') && html`<button type="button" class="secondary small-button"
          aria-label=${t('upload.cancel', { name: u.name })} onClick=${() => onCancel(u.key)}>${t('common.cancel')}</button>`}
      </div>
      ${(u.status === 'uploading' || u.status === 'waiting' || u.status === 'done') && html`<progress max="1"
        value=${u.progress} aria-label=${t('upload.progress', { name: u.name })}></progress>`}
    </li>`)}
  </ul>`;
}
