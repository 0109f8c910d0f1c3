// The assistant (`#/assistant`, `#/assistant/:id`): conversations (kept or ephemeral), and
// questions answered from the person's own records, streamed as they are written, with
// the records they cite as links. See docs/chat.md for the API.
import { html, useEffect, useMemo, useRef, useState } from '../vendor/preact-htm.module.js';
import { api, ApiError, errorMessage, query as toQuery, stream } from '../lib/api.js';
import { formatDateTime, formatTime } from '../lib/format.js';
import { t } from '../lib/i18n.js';
import { headingsFrom, renderMarkdown } from '../lib/markdown.js';
import { href, navigate } from '../lib/router.js';
import { ErrorBox, Loading, useLoad } from '../components/ui.js';
import { ConfirmDelete, LoadMore, RecordLinks, usePaged } from '../components/view-helpers.js';

const LIST_PAGE = 30;
const MESSAGES_PAGE = 50;

// The view is mounted afresh for every conversation: the list read last time is shown at
// once (and read again quietly), and a conversation just created opens with the cursor
// in the message box.
let listCache = null;
let focusComposerOnOpen = false;

const conversationPath = (id) => `/api/v1/chat/conversations/${encodeURIComponent(id)}`;

function conversationTitle(conversation) {
  return (conversation.title || '').trim() || t('assistant.untitled');
}

/** A readable message for a failed answer: an ApiError before the stream began, or the
 * `error` event's `{error, detail}`, or null when the stream just stopped. */
function answerError(failure) {
  if (!failure) return t('assistant.error.cutOff');
  if (failure instanceof ApiError || failure instanceof Error) return errorMessage(failure);
  const known = t(`assistant.error.${failure.error}`, { detail: failure.detail || '' }, null);
  return known || failure.detail || t('error.unexpected');
}

const nearBottom = () => window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 120;
const scrollToBottom = () => window.scrollTo({ top: document.documentElement.scrollHeight });

function NewConversation({ onCreated }) {
  const [ephemeral, setEphemeral] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const create = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onCreated(await api.post('/api/v1/chat/conversations', { ephemeral }));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return html`<form class="new-conversation" onSubmit=${create}>
    <fieldset>
      <legend>${t('assistant.keepLegend')}</legend>
      <label class="check">
        <input type="radio" name="conversation-kind" value="kept" checked=${!ephemeral}
          aria-describedby="conversation-kind-hint" onChange=${() => setEphemeral(false)} />
        ${t('assistant.kept')}
      </label>
      <label class="check">
        <input type="radio" name="conversation-kind" value="ephemeral" checked=${ephemeral}
          aria-describedby="conversation-kind-hint" onChange=${() => setEphemeral(true)} />
        ${t('assistant.ephemeral')}
      </label>
      <p id="conversation-kind-hint" class="small muted">${ephemeral ? t('assistant.ephemeralHint') : t('assistant.keptHint')}</p>
    </fieldset>
    <button type="submit" disabled=${busy} aria-busy=${busy}>${busy ? t('assistant.creating') : t('assistant.new')}</button>
    ${error && html`<${ErrorBox} error=${t('assistant.createFailed', { message: errorMessage(error) })} />`}
  </form>`;
}

function ConversationList({ list, currentId }) {
  if (list.loading) return html`<${Loading} />`;
  if (list.error) return html`<${ErrorBox} error=${list.error} what onRetry=${list.reload} />`;
  if (!list.items.length) return html`<p class="muted small conv-empty">${t('assistant.noConversations')}</p>`;
  return html`<ul class="conv-list">
      ${list.items.map((c) => html`<li key=${c.id}>
        <a class="conv-link" href=${href('/assistant/' + encodeURIComponent(c.id))} aria-current=${c.id === currentId ? 'page' : undefined}>
          <span class="conv-title">${conversationTitle(c)}</span>
          <span class="conv-meta small">
            ${c.ephemeral && html`<span class="badge ephemeral">${t('assistant.ephemeral')}</span>`}
            <time datetime=${c.updated_at}>${formatDateTime(c.updated_at)}</time>
          </span>
        </a>
      </li>`)}
    </ul>
    <${LoadMore} list=${list} />`;
}

function Message({ message, streaming = false }) {
  const body = useMemo(() => headingsFrom(renderMarkdown(message.content), 3), [message.content]);
  const mine = message.role === 'user';
  return html`<li class=${'message ' + (mine ? 'from-user' : 'from-assistant')} aria-busy=${streaming}>
    <p class="message-role small">
      ${mine ? t('assistant.you') : t('assistant.jilu')}
      ${message.created_at && html` · <time datetime=${message.created_at}>${formatTime(message.created_at)}</time>`}
    </p>
    ${message.content
      ? html`<div class="markdown message-body" dangerouslySetInnerHTML=${{ __html: body }}></div>`
      : streaming && html`<p class="muted message-body">${t('assistant.thinking')}</p>`}
    ${message.citations && message.citations.length > 0 && html`<div class="citations">
      <p class="small muted citations-label">${t('assistant.sources')}</p>
      <${RecordLinks} ids=${message.citations} label=${t('assistant.sources')} />
    </div>`}
  </li>`;
}

/** The question being answered (or stopped, or failed), not stored yet. */
function PendingTurn({ turn, onAgain }) {
  const question = { role: 'user', content: turn.question };
  const answer = { role: 'assistant', content: turn.text };
  return html`
    <${Message} message=${question} />
    ${(turn.status !== 'error' || turn.text) && html`<${Message} message=${answer} streaming=${turn.status === 'streaming'} />`}
    ${turn.status === 'stopped' && html`<li class="turn-note">
      <p class="small muted">${t('assistant.stopped')}</p>
      <button type="button" class="secondary" onClick=${onAgain}>${t('assistant.askAgain')}</button>
    </li>`}
    ${turn.status === 'error' && html`<li class="turn-note">
      <div class="error-box" role="alert">
        <p>${t('assistant.answerFailed', { message: turn.error })}</p>
        <button type="button" class="secondary" onClick=${onAgain}>${t('common.retry')}</button>
      </div>
    </li>`}`;
}

function Composer({ streaming, onSend, onStop, inputRef }) {
  const [draft, setDraft] = useState('');
  const send = () => {
    const content = draft.trim();
    if (!content || streaming) return;
    setDraft('');
    onSend(content);
  };
  const onKeyDown = (event) => {
    // Enter sends, Shift+Enter is a new line; never while an input method is composing (Chinese).
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      send();
    }
  };
  return html`<form class="composer" onSubmit=${(e) => { e.preventDefault(); send(); }}>
    <label for="chat-input" class="visually-hidden">${t('assistant.message')}</label>
    <textarea id="chat-input" ref=${inputRef} rows="2" maxlength="4000" value=${draft}
      placeholder=${t('assistant.placeholder')} aria-describedby="chat-input-hint"
      onInput=${(e) => setDraft(e.currentTarget.value)} onKeyDown=${onKeyDown}></textarea>
    ${streaming
      ? html`<button type="button" class="secondary stop-button" onClick=${onStop}>${t('assistant.stop')}</button>`
      : html`<button type="submit" disabled=${!draft.trim()}>${t('assistant.send')}</button>`}
    <p id="chat-input-hint" class="small muted composer-hint">${t('assistant.enterHint')}</p>
  </form>`;
}

function RenameForm({ conversation, onDone }) {
  const [title, setTitle] = useState(conversation.title || '');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const inputRef = useRef(null);
  useEffect(() => inputRef.current && inputRef.current.select(), []);
  const save = async (event) => {
    event.preventDefault();
    if (!title.trim()) return;
    setBusy(true);
    setError(null);
    try {
      onDone(await api.patch(conversationPath(conversation.id), { title: title.trim() }));
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return html`<form class="rename-form" onSubmit=${save}>
    <div class="field">
      <label for="conversation-title">${t('assistant.titleLabel')}</label>
      <input id="conversation-title" ref=${inputRef} value=${title} maxlength="200" required
        onInput=${(e) => setTitle(e.currentTarget.value)}
        onKeyDown=${(e) => e.key === 'Escape' && onDone(null)} />
    </div>
    <div class="actions">
      <button type="submit" disabled=${busy || !title.trim()} aria-busy=${busy}>${busy ? t('common.saving') : t('common.save')}</button>
      <button type="button" class="secondary" onClick=${() => onDone(null)}>${t('common.cancel')}</button>
    </div>
    ${error && html`<${ErrorBox} error=${t('assistant.renameFailed', { message: errorMessage(error) })} />`}
  </form>`;
}

function Conversation({ id, onChanged, onDeleted }) {
  const detail = useLoad((signal) => api.get(conversationPath(id) + toQuery({ limit: MESSAGES_PAGE }), { signal }), [id]);
  const [conversation, setConversation] = useState(null);
  const [messages, setMessages] = useState([]); // oldest first
  const [older, setOlder] = useState({ cursor: null, loading: false, error: null });
  const [turn, setTurn] = useState(null); // {question, text, status: streaming|stopped|error, error}
  const [renaming, setRenaming] = useState(false);
  const controller = useRef(null);
  const stick = useRef(true);
  const inputRef = useRef(null);

  useEffect(() => {
    if (!detail.data) return;
    const { messages: page, ...rest } = detail.data;
    setConversation(rest);
    setMessages([...page.items].reverse());
    setOlder({ cursor: page.next_cursor, loading: false, error: null });
    requestAnimationFrame(scrollToBottom);
  }, [detail.data]);

  // A conversation just created opens with the cursor in the message box.
  useEffect(() => {
    if (!conversation || !focusComposerOnOpen) return;
    focusComposerOnOpen = false;
    if (inputRef.current) inputRef.current.focus();
  }, [conversation]);

  // Leaving the conversation stops its answer.
  useEffect(() => () => controller.current && controller.current.abort(), []);

  useEffect(() => {
    if (turn && stick.current) scrollToBottom();
  }, [turn && turn.text, turn && turn.status]);

  const loadOlder = async () => {
    setOlder((o) => ({ ...o, loading: true, error: null }));
    try {
      const page = await api.get(conversationPath(id) + '/messages' + toQuery({ limit: MESSAGES_PAGE, cursor: older.cursor }));
      setMessages((ms) => [...[...page.items].reverse(), ...ms]);
      setOlder({ cursor: page.next_cursor, loading: false, error: null });
    } catch (error) {
      setOlder((o) => ({ ...o, loading: false, error }));
    }
  };

  const ask = async (question) => {
    // A stopped answer stays on screen (it was never stored); a failed one is replaced.
    if (turn && turn.status === 'stopped') {
      const at = new Date().toISOString();
      setMessages((ms) => [...ms, { id: `local-q-${at}`, role: 'user', content: turn.question },
        { id: `local-a-${at}`, role: 'assistant', content: turn.text + '\n\n*' + t('assistant.stoppedShort') + '*' }]);
    }
    const current = new AbortController();
    controller.current = current;
    stick.current = true;
    setTurn({ question, text: '', status: 'streaming' });
    let text = '';
    let saved = null;
    let failure = null;
    try {
      await stream(conversationPath(id) + '/messages', { method: 'POST', json: { content: question, stream: true }, signal: current.signal },
        (name, data) => {
          if (name === 'delta') {
            stick.current = nearBottom();
            text += (data && data.text) || '';
            setTurn((tu) => ({ ...tu, text }));
          } else if (name === 'done') {
            saved = data;
          } else if (name === 'error') {
            failure = data || {};
          }
        });
    } catch (error) {
      if (error.name === 'AbortError') {
        if (controller.current === current) setTurn((tu) => tu && { ...tu, status: 'stopped' });
        return;
      }
      failure = error;
    }
    if (controller.current !== current) return;
    controller.current = null;
    if (saved && !failure) {
      const asked = { id: `local-${saved.id}`, role: 'user', content: question, citations: [], created_at: saved.created_at };
      setMessages((ms) => [...ms, asked, saved]);
      setTurn(null);
      let next = { ...conversation, updated_at: saved.created_at };
      if (!next.title) {
        // The first question names an untitled conversation on the server: fetch that name.
        try {
          const fresh = await api.get(conversationPath(id) + toQuery({ limit: 1 }));
          next = { ...next, title: fresh.title, updated_at: fresh.updated_at };
        } catch {
          // keep "untitled" until the next visit
        }
      }
      setConversation(next);
      onChanged(next, true);
    } else {
      setTurn((tu) => ({ ...tu, status: 'error', error: answerError(failure) }));
    }
  };

  const stop = () => {
    if (controller.current) controller.current.abort();
    if (inputRef.current) inputRef.current.focus();
  };

  if (detail.error) {
    const gone = detail.error instanceof ApiError && detail.error.status === 404;
    return html`<div class="chat">
      ${gone
        ? html`<div class="error-box" role="alert"><p>${t('assistant.gone')}</p>
            <p><a href=${href('/assistant')}>${t('assistant.backToList')}</a></p></div>`
        : html`<${ErrorBox} error=${detail.error} what onRetry=${detail.reload} />`}
    </div>`;
  }
  if (!conversation) return html`<div class="chat"><${Loading} /></div>`;

  const streaming = Boolean(turn && turn.status === 'streaming');
  return html`<div class="chat">
    <div class="conv-header">
      ${renaming
        ? html`<${RenameForm} conversation=${conversation} onDone=${(renamed) => {
            setRenaming(false);
            if (renamed) {
              setConversation(renamed);
              onChanged(renamed, true);
            }
          }} />`
        : html`<h2 class="conv-heading">${conversationTitle(conversation)}</h2>
          <div class="actions conv-actions">
            <button type="button" class="secondary" onClick=${() => setRenaming(true)} aria-label=${t('assistant.rename')}>${t('assistant.renameShort')}</button>
            <${ConfirmDelete} label=${t('assistant.delete')} question=${t('assistant.confirmDelete')}
              onConfirm=${async () => { await api.del(conversationPath(id)); onDeleted(id); }} />
          </div>`}
      ${conversation.ephemeral && html`<p class="ephemeral-note small">
        <span class="badge ephemeral">${t('assistant.ephemeral')}</span> ${t('assistant.ephemeralNote')}
      </p>`}
    </div>

    ${older.cursor && html`<p class="load-more">
      <button type="button" class="secondary" onClick=${loadOlder} disabled=${older.loading} aria-busy=${older.loading}>
        ${older.loading ? t('common.loading') : t('assistant.earlier')}
      </button>
    </p>`}
    ${older.error && html`<${ErrorBox} error=${older.error} what onRetry=${loadOlder} />`}

    ${messages.length === 0 && !turn
      ? html`<p class="chat-empty muted">${t('assistant.emptyConversation')}</p>`
      : html`<ol class="messages" aria-label=${t('assistant.messages')}>
          ${messages.map((m) => html`<${Message} key=${m.id} message=${m} />`)}
          ${turn && html`<${PendingTurn} turn=${turn} onAgain=${() => ask(turn.question)} />`}
        </ol>`}
    <p class="visually-hidden" role="status">${streaming ? t('assistant.answering') : ''}</p>

    <${Composer} streaming=${streaming} onSend=${ask} onStop=${stop} inputRef=${inputRef} />
  </div>`;
}

export function AssistantView({ params }) {
  const id = params.id || null;
  const [panelOpen, setPanelOpen] = useState(!id);
  const headingRef = useRef(null);
  const list = usePaged(
    (cursor, signal) => api.get('/api/v1/chat/conversations' + toQuery({ limit: LIST_PAGE, cursor }), { signal }),
    [],
    { initial: listCache },
  );

  useEffect(() => {
    if (!focusComposerOnOpen && headingRef.current) headingRef.current.focus({ preventScroll: true });
  }, []);
  useEffect(() => {
    if (!list.loading && !list.error) listCache = { items: list.items, nextCursor: list.nextCursor };
  }, [list.items, list.nextCursor, list.loading, list.error]);

  const created = (conversation) => {
    list.setItems((items) => [conversation, ...items.filter((c) => c.id !== conversation.id)]);
    listCache = { items: [conversation, ...list.items.filter((c) => c.id !== conversation.id)], nextCursor: list.nextCursor };
    focusComposerOnOpen = true;
    navigate('/assistant/' + encodeURIComponent(conversation.id));
  };
  const changed = (conversation, toTop) => list.setItems((items) => {
    const others = items.filter((c) => c.id !== conversation.id);
    return toTop ? [conversation, ...others] : items.map((c) => (c.id === conversation.id ? conversation : c));
  });
  const deleted = (conversationId) => {
    const items = list.items.filter((c) => c.id !== conversationId);
    listCache = { items, nextCursor: list.nextCursor };
    list.setItems(() => items);
    navigate('/assistant');
  };

  return html`<section class="page assistant-page">
    <div class="page-header">
      <h1 tabindex="-1" ref=${headingRef}>${t('assistant.title')}</h1>
      <button type="button" class="secondary conv-toggle" aria-expanded=${panelOpen} aria-controls="conversations-panel"
        onClick=${() => setPanelOpen(!panelOpen)}>${t('assistant.conversations')}</button>
    </div>
    <div class="assistant-layout">
      <section id="conversations-panel" class=${'conv-panel' + (panelOpen ? ' open' : '')} aria-labelledby="conversations-heading">
        <h2 id="conversations-heading" class="conv-panel-heading">${t('assistant.conversations')}</h2>
        <${NewConversation} onCreated=${created} />
        <${ConversationList} list=${list} currentId=${id} />
      </section>
      <div class="chat-area">
        ${id
          ? html`<${Conversation} key=${id} id=${id} onChanged=${changed} onDeleted=${deleted} />`
          : html`<div class="chat-welcome">
              <p>${t('assistant.welcome')}</p>
              <p class="small muted">${t('assistant.welcomeHint')}</p>
            </div>`}
      </div>
    </div>
  </section>`;
}
