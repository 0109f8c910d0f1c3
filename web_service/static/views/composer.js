// `#/new`: write a record. Markdown with a preview, kind, title, tags, when it happened,
// "never send to AI", and images (picker, drop, paste) and audio previewed before saving.
// Saving creates the record with an id made here (so a retry cannot make two), then uploads
// each file with its own progress and Cancel. Offline, the record waits in the outbox.
import { html, useEffect, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, errorMessage } from '../lib/api.js';
import { t } from '../lib/i18n.js';
import { href, navigate } from '../lib/router.js';
import { uuid7 } from '../lib/format.js';
import { connectivity } from '../lib/connectivity.js';
import { queueRecord } from '../lib/offline.js';
import { showNotice } from '../lib/notice.js';
import { session } from '../lib/session.js';
import { useStore } from '../lib/store.js';
import { ErrorBox, useFocusHeading } from '../components/ui.js';
import { RecordFields, bodyFrom, draftFrom } from '../components/record-fields.js';
import { FilePicker, pickedFile, releaseFiles, useFileDrop } from '../components/file-picker.js';
import { UploadList, useUploads } from '../components/upload-list.js';

export function ComposerView() {
  const heading = useRef(null);
  useFocusHeading(heading);
  const form = useRef(null);
  const recordId = useRef(uuid7()); // the same id on every try: the create is idempotent
  const [draft, setDraft] = useState(() => draftFrom(null));
  const [files, setFiles] = useState([]);
  const [phase, setPhase] = useState('editing'); // editing | saving | uploading | uploaded-partly
  const [error, setError] = useState(null);
  const [created, setCreated] = useState(false);
  const { online } = useStore(connectivity);
  const uploads = useUploads();

  const filesRef = useRef(files);
  filesRef.current = files;
  useEffect(() => () => releaseFiles(filesRef.current), []);

  const busy = phase === 'saving' || phase === 'uploading';
  const addFiles = (chosen) => setFiles((list) => [...list, ...chosen.map(pickedFile)]);
  const removeFile = (key) => setFiles((list) => {
    releaseFiles(list.filter((item) => item.key === key));
    return list.filter((item) => item.key !== key);
  });
  const dragging = useFileDrop(form, addFiles, !busy);

  const uploadAll = async (items) => {
    setPhase('uploading');
    const done = await uploads.start(recordId.current, items);
    if (done.length === items.length) {
      navigate(`/records/${recordId.current}`);
      return;
    }
    setFiles((list) => list.filter((item) => !done.includes(item.key)));
    setPhase('uploaded-partly');
  };

  const save = async (event) => {
    event.preventDefault();
    if (busy) return;
    setError(null);
    if (!draft.content.trim() && !draft.title.trim() && !files.length) {
      setError(t('composer.error.empty'));
      return;
    }
    const body = { id: recordId.current, ...bodyFrom(draft) };
    setPhase('saving');
    const keepHere = async () => {
      try {
        await queueRecord(body);
      } catch {
        setPhase('editing');
        setError(t('composer.error.offlineFailed'));
        return;
      }
      showNotice({ text: files.length ? t('composer.queuedWithoutFiles') : t('composer.queued'), tone: 'warn' });
      navigate('/');
    };
    if (!navigator.onLine || session.get().offline) {
      await keepHere(); // no request that is bound to fail
      return;
    }
    try {
      await api.post('/api/v1/records', body);
    } catch (err) {
      if (err.isNetwork) {
        await keepHere();
        return;
      }
      setPhase('editing');
      setError(errorMessage(err));
      return;
    }
    setCreated(true);
    if (!files.length) {
      navigate(`/records/${recordId.current}`);
      return;
    }
    await uploadAll(files);
  };

  // Ctrl/Cmd+Enter saves from anywhere in the form.
  const onKeyDown = (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) save(event);
  };

  return html`<section class="record-composer">
    <div class="page-header">
      <h1 tabindex="-1" ref=${heading}>${t('composer.heading')}</h1>
    </div>
    ${!online && html`<p class="composer-offline notice warn" role="status">
      ${files.length ? t('composer.offlineFiles') : t('composer.offline')}
    </p>`}
    <form ref=${form} class=${'composer-form card' + (dragging ? ' dragging' : '')} onSubmit=${save} onKeyDown=${onKeyDown}
      aria-describedby="composer-drop-hint" novalidate>
      <fieldset disabled=${busy || created} class="composer-fields">
        <legend class="visually-hidden">${t('composer.heading')}</legend>
        <${RecordFields} idPrefix="composer" draft=${draft}
          onChange=${(change) => setDraft((d) => ({ ...d, ...change }))} />
      </fieldset>
      <div class="field">
        <span class="field-label" id="composer-files-label">${t('composer.files')}</span>
        <${FilePicker} idPrefix="composer-files" files=${files} onAdd=${addFiles} onRemove=${removeFile}
          dragging=${dragging} disabled=${busy} />
        <span id="composer-drop-hint" class="visually-hidden">${t('files.dropHint')}</span>
      </div>
      <${UploadList} uploads=${uploads.uploads} onCancel=${uploads.cancel} />
      ${error && html`<${ErrorBox} error=${error} />`}
      ${phase === 'uploaded-partly' && html`<div class="notice warn" role="status">
        <p class="notice-text">${t('composer.uploadsIncomplete')}</p>
        <div class="notice-actions">
          ${files.length > 0 && html`<button type="button" class="secondary" onClick=${() => uploadAll(files)}>${t('composer.retryUploads')}</button>`}
          <a class="button secondary" href=${href(`/records/${recordId.current}`)}>${t('composer.openRecord')}</a>
        </div>
      </div>`}
      <div class="actions composer-actions">
        ${!created && html`<button type="submit" disabled=${busy}>${phase === 'saving' ? t('common.saving') : t('composer.save')}</button>`}
        ${phase === 'uploading' && html`<span class="muted small" role="status">${t('composer.uploading')}</span>`}
        ${!created && html`<a class="button secondary" href=${href('/')}>${t('common.cancel')}</a>`}
        <span class="hint small muted composer-shortcut">${t('composer.shortcut')}</span>
      </div>
    </form>
  </section>`;
}
