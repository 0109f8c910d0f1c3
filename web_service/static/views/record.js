// `#/records/:id`: one record — its text, attachments, what the AI made of it, its public
// link — edited in place. An edit names the version it started from; when the record moved
// on meanwhile (409), both versions are shown side by side to choose from. Changes made
// elsewhere arrive live, without clobbering an edit in progress.
import { html, useEffect, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, ApiError } from '../lib/api.js';
import { t } from '../lib/i18n.js';
import { href, navigate } from '../lib/router.js';
import { formatDateTime } from '../lib/format.js';
import { headingsFrom, renderMarkdown } from '../lib/markdown.js';
import { liveEvents } from '../lib/live.js';
import { showNotice } from '../lib/notice.js';
import { ErrorBox, Loading, useFocusHeading, useLoad } from '../components/ui.js';
import { recordTitle } from '../components/record-card.js';
import { RecordFields, changesFrom, draftFrom } from '../components/record-fields.js';
import { FilePicker, pickedFile, releaseFiles, useFileDrop } from '../components/file-picker.js';
import { UploadList, useUploads } from '../components/upload-list.js';
import { useConfirm } from '../components/confirm-dialog.js';
import { AiBlock, Attachments, ConflictPanel, ImageViewer, Meta, ShareBlock, Tags, attachmentName } from '../components/record-parts.js';

const recordPath = (id) => `/api/v1/records/${encodeURIComponent(id)}`;

/** The draft fields a PATCH body's keys correspond to. */
const DRAFT_FIELD = { kind: 'kind', title: 'title', content: 'content', tags: 'tags', occurred_at: 'occurred', ai_opt_out: 'ai_opt_out' };

function shareAddress(url) {
  return /^https?:\/\//i.test(url) ? url : new URL(url, location.origin).href;
}

// --- the page ---

export function RecordView({ params }) {
  const id = params.id;
  const path = recordPath(id);
  const heading = useRef(null);
  useFocusHeading(heading);
  const loaded = useLoad((signal) => api.get(path, { signal }), [path]);
  const record = loaded.data;
  const [edit, setEdit] = useState(null); // {draft, base, files, error, saving}
  const [conflict, setConflict] = useState(null); // {current, changes}
  const [remote, setRemote] = useState(null); // 'changed' | 'deleted'
  const [image, setImage] = useState(null);
  const [share, setShare] = useState({ url: null, busy: false, error: null });
  const [analysis, setAnalysis] = useState({ busy: false, error: null });
  const [actionError, setActionError] = useState(null);
  const [busyAttachment, setBusyAttachment] = useState(null);
  const [confirmDialog, ask] = useConfirm();
  const uploads = useUploads();
  const editForm = useRef(null);
  const self = useRef({ busy: false, deleting: false }); // our own writes: not news

  const refresh = async () => {
    try {
      loaded.setData(await api.get(path));
    } catch (error) {
      if (error.status === 404) setRemote('deleted');
    }
  };

  // Live: changes made elsewhere. An edit in progress is never overwritten.
  const latest = useRef({});
  latest.current = { record, edit, refresh };
  useEffect(() => liveEvents.subscribe((event) => {
    const { record: shown, edit: editing, refresh: again } = latest.current;
    if (self.current.busy) return;
    if (event.type === 'reset') {
      if (editing) setRemote('changed');
      else again();
      return;
    }
    if (event.record_id !== id) return;
    if (event.type === 'deleted') {
      if (!self.current.deleting) setRemote('deleted');
      return;
    }
    if (shown && event.version && event.version < shown.version) return;
    if (editing && event.version && event.version > editing.base.version) {
      setRemote('changed');
      return;
    }
    again(); // an analysis (same version), or news while nothing is being edited
  }), [id]);

  // The link of a shared record: only read here (GET); it is published (POST) only when
  // the person presses Share. A 404 means it was unshared elsewhere: reload the record.
  useEffect(() => {
    if (record && !record.shared && share.url) setShare((x) => ({ ...x, url: null })); // revoked elsewhere
    if (!record || !record.shared || share.url || share.busy) return undefined;
    let live = true;
    api.get(`${path}/share`).then(
      (link) => live && setShare({ url: shareAddress(link.url), busy: false, error: null }),
      (error) => {
        if (!live) return;
        if (error instanceof ApiError && error.status === 404) {
          setShare({ url: null, busy: false, error: null });
          latest.current.refresh();
        } else {
          setShare({ url: null, busy: false, error });
        }
      },
    );
    return () => {
      live = false;
    };
  }, [record && record.shared]);

  // Editing: the files picked to add, dropped or pasted anywhere on the form.
  const editFiles = edit ? edit.files : [];
  const filesRef = useRef(editFiles);
  filesRef.current = editFiles;
  useEffect(() => () => releaseFiles(filesRef.current), []);
  const addFiles = (chosen) => setEdit((e) => e && { ...e, files: [...e.files, ...chosen.map(pickedFile)] });
  const removeFile = (key) => setEdit((e) => {
    if (!e) return e;
    releaseFiles(e.files.filter((f) => f.key === key));
    return { ...e, files: e.files.filter((f) => f.key !== key) };
  });
  const dragging = useFileDrop(editForm, addFiles, Boolean(edit) && !conflict); // re-attached after a conflict

  useEffect(() => {
    if (edit && !edit.focused) {
      const field = document.getElementById('edit-title');
      if (field) field.focus();
      setEdit((e) => e && { ...e, focused: true });
    }
  }, [Boolean(edit)]);

  const startEdit = () => {
    setActionError(null);
    setRemote(null);
    uploads.reset();
    setEdit({ draft: draftFrom(record), base: record, files: [], error: null, saving: false, focused: false });
  };
  const stopEdit = () => {
    releaseFiles(editFiles);
    setEdit(null);
    setConflict(null);
    uploads.reset();
    setTimeout(() => heading.current && heading.current.focus(), 0);
  };

  /** PATCH `changes` onto `version`, then upload the files; a 409 opens the conflict panel. */
  const save = async (changes, version) => {
    setEdit((e) => ({ ...e, saving: true, error: null }));
    self.current.busy = true;
    try {
      let saved = record;
      if (Object.keys(changes).length) {
        try {
          saved = await api.patch(path, { version, ...changes });
        } catch (error) {
          if (error.status === 409 && error.code === 'version_conflict' && error.body && error.body.current) {
            setConflict({ current: error.body.current, changes });
            setRemote(null); // the conflict panel says it all
            setEdit((e) => ({ ...e, saving: false }));
            return;
          }
          setEdit((e) => ({ ...e, saving: false, error }));
          return;
        }
        loaded.setData(saved);
      }
      setConflict(null);
      const files = filesRef.current;
      if (files.length) {
        const done = await uploads.start(id, files);
        const fresh = await api.get(path).catch(() => null);
        if (fresh) loaded.setData(fresh);
        if (done.length !== files.length) {
          releaseFiles(files.filter((f) => done.includes(f.key)));
          setEdit((e) => ({
            ...e,
            saving: false,
            base: fresh || saved,
            draft: draftFrom(fresh || saved),
            files: e.files.filter((f) => !done.includes(f.key)),
          }));
          return;
        }
      }
      stopEdit();
    } finally {
      self.current.busy = false;
    }
  };

  const submitEdit = (event) => {
    event.preventDefault();
    if (!edit || edit.saving) return;
    save(changesFrom(edit.draft, edit.base), edit.base.version);
  };

  const keepMine = () => save(conflict.changes, conflict.current.version);
  const takeTheirs = () => {
    loaded.setData(conflict.current);
    stopEdit();
  };
  const keepEditing = () => {
    // Carry on from the other version, keeping the fields changed here.
    const server = conflict.current;
    const rebased = draftFrom(server);
    for (const key of Object.keys(conflict.changes)) rebased[DRAFT_FIELD[key]] = edit.draft[DRAFT_FIELD[key]];
    loaded.setData(server);
    setEdit((e) => ({ ...e, base: server, draft: rebased }));
    setConflict(null);
  };

  const reloadDiscarding = () => {
    setRemote(null);
    if (edit) stopEdit();
    refresh();
  };

  const analyse = async () => {
    setAnalysis({ busy: true, error: null });
    try {
      await api.post(`${path}/analyze`);
      loaded.setData((r) => ({ ...r, ai: { ...r.ai, status: 'pending', error: null } }));
      setAnalysis({ busy: false, error: null });
    } catch (error) {
      setAnalysis({ busy: false, error });
    }
  };

  const remove = async () => {
    const yes = await ask({ title: t('record.delete.title'), message: t('record.delete.text'), confirmLabel: t('record.delete.confirm'), danger: true });
    if (!yes) return;
    setActionError(null);
    self.current.deleting = true;
    try {
      await api.del(path);
    } catch (error) {
      self.current.deleting = false;
      setActionError(error);
      return;
    }
    showNotice({
      text: t('record.deleted'),
      actionLabel: t('record.undo'),
      action: async () => {
        await api.post(`${path}/restore`);
        navigate(`/records/${encodeURIComponent(id)}`);
      },
    });
    navigate('/');
  };

  const deleteAttachment = async (attachment) => {
    const name = attachmentName(attachment);
    const yes = await ask({ title: t('record.attachment.deleteTitle'), message: name, confirmLabel: t('common.delete'), danger: true });
    if (!yes) return;
    setBusyAttachment(attachment.id);
    setActionError(null);
    try {
      await api.del(`/api/v1/attachments/${encodeURIComponent(attachment.id)}`);
      await refresh();
    } catch (error) {
      setActionError(error);
    } finally {
      setBusyAttachment(null);
    }
  };

  const toggleShare = async (on) => {
    setShare((s) => ({ ...s, busy: true, error: null }));
    try {
      if (on) {
        const link = await api.post(`${path}/share`);
        setShare({ url: shareAddress(link.url), busy: false, error: null });
      } else {
        await api.del(`${path}/share`);
        setShare({ url: null, busy: false, error: null });
      }
      await refresh();
    } catch (error) {
      setShare((s) => ({ ...s, busy: false, error }));
    }
  };

  // --- what is shown ---

  const title = record ? recordTitle(record) : t('record.heading');
  let body;
  if (loaded.error && !record) {
    body = loaded.error.status === 404
      ? html`<div class="empty"><p>${t('record.notFound')}</p>
          <p><a href=${href('/')}>${t('page.backHome')}</a> · <a href=${href('/trash')}>${t('record.openTrash')}</a></p></div>`
      : html`<${ErrorBox} error=${loaded.error} what=${true} onRetry=${loaded.reload} />`;
  } else if (!record) {
    body = html`<${Loading} />`;
  } else if (edit) {
    body = html`
      ${conflict
        ? html`<${ConflictPanel} conflict=${conflict} draft=${edit.draft} base=${edit.base} busy=${edit.saving}
            onKeepMine=${keepMine} onTakeTheirs=${takeTheirs} onKeepEditing=${keepEditing} />`
        : html`<form ref=${editForm} class=${'record-edit card' + (dragging ? ' dragging' : '')} onSubmit=${submitEdit}
            aria-labelledby="edit-heading" novalidate>
            <h2 id="edit-heading" class="edit-heading">${t('record.edit.heading')}</h2>
            <fieldset class="composer-fields" disabled=${edit.saving}>
              <legend class="visually-hidden">${t('record.edit.heading')}</legend>
              <${RecordFields} idPrefix="edit" draft=${edit.draft}
                onChange=${(change) => setEdit((e) => ({ ...e, draft: { ...e.draft, ...change } }))} />
            </fieldset>
            ${record.attachments.length > 0 && html`<p class="small muted">${t('record.edit.existing', { count: record.attachments.length })}</p>`}
            <div class="field">
              <span class="field-label">${t('record.edit.addFiles')}</span>
              <${FilePicker} idPrefix="edit-files" files=${edit.files} onAdd=${addFiles} onRemove=${removeFile}
                dragging=${dragging} disabled=${edit.saving} />
            </div>
            <${UploadList} uploads=${uploads.uploads} onCancel=${uploads.cancel} />
            ${edit.error && html`<${ErrorBox} error=${edit.error} />`}
            <div class="actions">
              <button type="submit" disabled=${edit.saving}>${edit.saving ? t('common.saving') : t('common.save')}</button>
              <button type="button" class="secondary" disabled=${edit.saving} onClick=${stopEdit}>${t('common.cancel')}</button>
            </div>
          </form>`}`;
  } else {
    body = html`
      <${Tags} tags=${record.tags} />
      <div class="record-toolbar actions">
        <button type="button" onClick=${startEdit}>${t('common.edit')}</button>
        <button type="button" class="secondary danger-text" onClick=${remove}>${t('common.delete')}</button>
      </div>
      ${actionError && html`<${ErrorBox} error=${actionError} />`}
      <div class="record-content card">
        ${record.content.trim()
          ? html`<div class="markdown" dangerouslySetInnerHTML=${{ __html: headingsFrom(renderMarkdown(record.content), 2) }}></div>`
          : html`<p class="muted">${t('record.noText')}</p>`}
      </div>
      <${Attachments} record=${record} onOpenImage=${setImage} onDelete=${deleteAttachment} busyId=${busyAttachment} />
      <${AiBlock} record=${record} onAnalyse=${analyse} busy=${analysis.busy} error=${analysis.error} />
      <${ShareBlock} record=${record} share=${share} onShare=${() => toggleShare(true)} onUnshare=${() => toggleShare(false)} />
      <p class="small muted record-dates">${t('record.dates', {
        created: formatDateTime(record.created_at), updated: formatDateTime(record.updated_at), version: record.version })}</p>`;
  }

  return html`<section class="record-view">
    <p class="back-link small"><a href=${href('/')}>${t('record.back')}</a></p>
    ${remote === 'changed' && html`<div class="notice warn" role="status">
      <p class="notice-text">${t('record.remote.changed')}</p>
      <div class="notice-actions">
        <button type="button" class="secondary" onClick=${reloadDiscarding}>${t('record.remote.reload')}</button>
        <button type="button" class="link-button" onClick=${() => setRemote(null)}>${t('notice.dismiss')}</button>
      </div>
    </div>`}
    ${remote === 'deleted' && html`<div class="notice warn" role="status">
      <p class="notice-text">${t('record.remote.deleted')}</p>
      <div class="notice-actions"><a class="button secondary" href=${href('/trash')}>${t('record.openTrash')}</a></div>
    </div>`}
    <header class="record-header">
      <h1 tabindex="-1" ref=${heading}>${title}</h1>
      ${record && !edit && html`<${Meta} record=${record} />`}
    </header>
    ${body}
    <${ImageViewer} image=${image} onClose=${() => setImage(null)} />
    ${confirmDialog}
  </section>`;
}
